"""Piper training folders made by ``voxmill prepare`` from synthesized clips (the bundled voice, two speakers)."""

from __future__ import annotations

import sys
from pathlib import Path

from voxmill.engine import RunOptions
from voxmill.prepare import ClipOptions, PrepareOptions, parse_source
from voxmill.prepare import run as prepare

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from make_demo_corpus import write_corpus


def prepared_dataset(speech_cache: Path, out: Path, count: int = 12, val_fraction: float | None = None) -> Path:
    """``out``: ``count`` clips (the corpus cached in ``speech_cache``), ``val_fraction`` of them validation."""
    corpus = speech_cache / ("check-corpus" if count == 12 else f"train-corpus-{count}")
    if not (corpus / "metadata.csv").exists():
        write_corpus(corpus, count)
    prepare(
        PrepareOptions(
            [parse_source(str(corpus))], out, clip=ClipOptions(espeak_voice="en-us"), val_fraction=val_fraction,
            run=RunOptions(workers=1, progress=False),
        )
    )  # fmt: skip
    return out
