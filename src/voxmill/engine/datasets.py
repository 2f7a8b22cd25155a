"""Writing a dataset (Piper folder, HF parquet shards, NeMo manifests), every file atomically.

``prepare`` and ``segment`` both stage one wav (and, for hf, one flac) per kept clip while they run,
then call :func:`write_dataset` once; what each file contains is :mod:`voxmill.corpus.layouts`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TypeVar

from voxmill import errors
from voxmill.audio.io import atomic_path, write_text_atomic
from voxmill.corpus.layouts import (
    NEMO_MANIFESTS,
    DatasetClip,
    hf_label_keys,
    hf_schema,
    hf_shards,
    hf_table,
    multi_speaker,
    nemo_manifest,
    piper_config,
    piper_metadata,
)
from voxmill.corpus.piper import PIPER_METADATA, PIPER_VALIDATION_METADATA

__all__ = ["Staged", "check_staged", "place_wavs", "write_dataset"]

C = TypeVar("C", bound=DatasetClip)
Staged = Callable[[C, str], Path]  # where a clip's staged file with this suffix (".wav", ".flac") is


def place_wavs(clips: Sequence[C], staged: Staged[C], out: Path, keep_staged: bool = False) -> None:
    """Move staged wavs into ``out/wavs`` (a rename: no copy, and never half a file).

    ``keep_staged`` (a run that stopped early, so ``--resume`` will want them) links instead, and the
    staged copy stays. Every kept clip has its staged wav (a resumed record counts only while it
    does), so a missing one means something else removed it: an error, never a row pointing at an
    old or absent file.
    """
    wavs = out / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        source, target = staged(clip, ".wav"), wavs / f"{clip.file_id}.wav"
        try:
            if not keep_staged:
                os.replace(source, target)
                continue
            with atomic_path(target) as tmp:
                try:
                    os.link(source, tmp)
                except OSError:  # a file system without hard links
                    shutil.copy2(source, tmp)
        except FileNotFoundError:
            raise errors.ProcessingError(
                f"{source}: staged clip of {clip.id!r} vanished during the run; run again with --resume"
            ) from None


def write_dataset(
    out: Path,
    formats: Collection[str],
    train: Sequence[C],
    val: Sequence[C],
    staged: Staged[C],
    sample_rate: int,
    espeak_voice: str | None,
    keep_staged: bool = False,
) -> None:
    """The dataset of ``formats`` (``corpus.layouts.LAYOUTS``) in ``out`` from the kept clips.

    piper/nemo: the staged wavs placed in ``out/wavs`` (see :func:`place_wavs`), ``metadata.csv``
    (+ ``metadata_val.csv``) and ``config.json``, ``manifest_{train,val}.jsonl``. hf:
    ``out/hf/*.parquet`` from the staged flacs, one shard in memory at a time.
    """
    if {"piper", "nemo"} & set(formats):
        place_wavs([*train, *val], staged, out, keep_staged)
    if "piper" in formats:
        multi = multi_speaker([*train, *val])
        write_text_atomic(out / PIPER_METADATA, piper_metadata(train, multi))
        if val:
            write_text_atomic(out / PIPER_VALIDATION_METADATA, piper_metadata(val, multi))
        config = piper_config(train, val, sample_rate, espeak_voice, out.name)
        write_text_atomic(out / "config.json", json.dumps(config, ensure_ascii=False, indent=2) + "\n")
    if "nemo" in formats:
        wav_dir = (out / "wavs").resolve()
        for name, clips in zip(NEMO_MANIFESTS, (train, val), strict=True):
            write_text_atomic(out / name, nemo_manifest(clips, wav_dir))
    if "hf" in formats:
        _write_hf(out, train, val, staged)


def _write_hf(out: Path, train: Sequence[C], val: Sequence[C], staged: Staged[C]) -> None:
    import pyarrow.parquet as pq

    label_keys = hf_label_keys([*train, *val])
    schema = hf_schema(label_keys)
    folder = out / "hf"
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in hf_shards(train, val):
        table = hf_table(part, label_keys, schema, lambda clip: staged(clip, ".flac").read_bytes())
        with atomic_path(folder / name) as tmp:
            pq.write_table(table, tmp)
        del table  # the next shard's bytes replace this one's, never join them


def check_staged(path: Path, sample_rate: int, seconds: float) -> None:
    """ValueError unless ``path`` is a regular file holding a mono clip of ``seconds`` at ``sample_rate``
    (within a sample): a resumed run trusts a journal record only while its staged clip is intact."""
    import soundfile as sf

    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):  # a symlink could pull in any file
            raise ValueError(f"{path}: not a regular file")
        info = sf.info(str(path))
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"{path}: staged clip unreadable: {exc}") from None
    if (info.samplerate, info.channels) != (sample_rate, 1) or abs(info.frames - round(seconds * sample_rate)) > 1:
        raise ValueError(f"{path}: staged clip damaged")
