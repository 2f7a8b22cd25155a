"""``voxmill.prepare.run(PrepareOptions) -> PrepareResult``: corpora in, a training-ready dataset out."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.corpus.sources import Row, Source, read_rows
from voxmill.engine import Dropped, Failed, Journal, Ok, Pool
from voxmill.prepare.balance import cap_per_speaker, split_validation
from voxmill.prepare.sinks import OUTPUT_FORMATS, place_wavs, write_hf, write_nemo, write_piper, write_text
from voxmill.prepare.steps import Clip, ClipOptions, PrepareTask
from voxmill.text.phonemes import Phonemizer

__all__ = ["PrepareOptions", "PrepareResult", "run"]


@dataclass
class PrepareOptions:
    """Everything ``voxmill prepare`` can be told; the CLI only fills this in."""

    sources: list[Source]
    out: Path
    formats: list[str] = field(default_factory=lambda: ["piper"])
    sample_rate: int = 22050
    trim: bool = True
    keep_silence: float = 0.25
    loudness: float | None = -23.0
    peak_ceiling: float = -1.0
    min_duration: float = 0.0
    max_duration: float = 30.0
    max_clipping: float = 0.001
    max_per_speaker: int | None = None
    seed: int = 0
    val_fraction: float | None = None
    val_size: int | None = None
    espeak_voice: str | None = None
    workers: int | str = "auto"
    backend: str = "process"
    ray_address: str | None = None  # backend "ray": the cluster to join; None starts a local Ray
    resume: bool = False
    fail_fast: bool = False
    progress: bool | None = None


@dataclass
class PrepareResult:
    counts: dict[str, int]
    stats: dict[str, Any]
    out: Path
    layouts: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if self.counts.get("failed", 0) else 0


def _rows(sources: list[Source], layouts: list[str]) -> Iterator[Row]:
    """Rows of every source in order, with duplicate ids turned into failures."""
    seen: dict[str, str] = {}
    for source in sources:
        rows, layout = read_rows(source)
        layouts.append(f"{source.path}: {layout}")
        for row in rows:
            if row.error is None and row.id in seen:
                yield Row(
                    f"{row.id}@{row.source}", row.source, error=f"duplicate id {row.id!r} (first at {seen[row.id]})"
                )
                continue
            seen.setdefault(row.id, row.source)
            yield row


def run(opts: PrepareOptions) -> PrepareResult:
    unknown = [f for f in opts.formats if f not in OUTPUT_FORMATS]
    if unknown or not opts.formats:
        raise errors.ConfigError(f"--format: unknown {', '.join(unknown) or '(none)'}; use {', '.join(OUTPUT_FORMATS)}")
    for source in opts.sources:
        if not source.path.exists():
            raise errors.DatasetError(f"{source.path}: no such file or folder")
    if opts.espeak_voice:
        Phonemizer(opts.espeak_voice)  # an unknown voice is a usage error, not a failure on every clip
    out = opts.out
    state = out / ".voxmill"
    stage = state / "clips"
    if not opts.resume and state.exists():
        shutil.rmtree(state)  # a fresh run: forget the previous run's journal and staged clips
    stage.mkdir(parents=True, exist_ok=True)
    # The per-clip settings are PrepareOptions' fields of the same names, plus what the outputs imply.
    shared = {f.name: getattr(opts, f.name) for f in dataclasses.fields(ClipOptions) if hasattr(opts, f.name)}
    clip_options = ClipOptions(
        stage_dir=str(stage), for_piper="piper" in opts.formats, write_flac="hf" in opts.formats, **shared
    )
    layouts: list[str] = []
    report: list[dict[str, Any]] = []
    clips: list[Clip] = []
    pool = Pool(workers=opts.workers, backend=opts.backend, progress=opts.progress, description="preparing", window=64,
                address=opts.ray_address)  # fmt: skip
    with Journal(state / "journal.db") as journal:
        outcomes = pool.imap(
            PrepareTask(clip_options), _rows(opts.sources, layouts), journal=journal, key=lambda r: r.id
        )
        for outcome in outcomes:
            row: Row = outcome.item
            entry: dict[str, Any] = {"id": row.id, "source": row.source}
            result = outcome.result
            if isinstance(result, Ok):
                clips.append(_shared(result.value, row))
                entry["status"] = "ok"
            elif isinstance(result, Dropped):
                entry.update(status="dropped", reason=result.reason)
            else:
                entry.update(status="failed", reason=_reason(result))
            report.append(entry)
            if opts.fail_fast and isinstance(result, Failed):
                break

    kept, capped = cap_per_speaker(clips, opts.max_per_speaker, opts.seed)
    capped_ids = {c.id for c in capped}
    for entry in report:
        if entry["id"] in capped_ids:
            entry.update(status="dropped", reason=f"speaker cap ({opts.max_per_speaker} per speaker)")
    train, val = split_validation(kept, opts.val_fraction, opts.val_size, opts.seed)
    if {"piper", "nemo"} & set(opts.formats):
        place_wavs(kept, stage, out)
    if "piper" in opts.formats:
        write_piper(train, val, out, opts.sample_rate, opts.espeak_voice)
    if "nemo" in opts.formats:
        write_nemo(train, val, out)
    if "hf" in opts.formats:
        write_hf(train, val, out, stage)
    write_text(out / "report.jsonl", "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in report))
    stats = _stats(report, clips, kept, train, val, layouts)
    write_text(out / "stats.json", json.dumps(stats, ensure_ascii=False, indent=2) + "\n")
    counts = Counter(e["status"] for e in report)
    return PrepareResult(dict(counts), stats, out, layouts)


def _shared(clip: Clip, row: Row) -> Clip:
    """The clip with its strings taken from the parent's row: a clip unpickled from a worker holds
    copies, and every clip is kept until the end, so sharing keeps 100k clips to a few MB."""
    return dataclasses.replace(
        clip,
        id=row.id,
        source=row.source,
        text=row.text if clip.text == row.text else clip.text,
        speaker=row.speaker,
        labels=row.labels,
    )


def _reason(failed: Failed) -> str:
    # Decode errors already say "path: reason"; other exceptions get their type for context.
    if failed.error in ("AudioDecodeError", "ValueError"):
        return failed.message
    return str(failed)


def _stats(
    report: list[dict[str, Any]],
    clips: list[Clip],
    kept: list[Clip],
    train: list[Clip],
    val: list[Clip],
    layouts: list[str],
) -> dict[str, Any]:
    counts = Counter(e["status"] for e in report)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in report:
        if entry["status"] != "ok":
            # Group "too short: 0.31s < 0.37s" style reasons by their head so the table stays short.
            reasons[entry["status"]][str(entry.get("reason", "")).split(":")[0]] += 1
    speakers = Counter(c.speaker or "" for c in kept)
    per_label: dict[str, float] = defaultdict(float)
    for clip in kept:
        for key, value in clip.labels.items():
            per_label[f"{key}={value}"] += clip.seconds_out / 3600
    return {
        "sources": layouts,
        "rows": len(report),
        "counts": dict(counts),
        "reasons": {status: dict(c.most_common()) for status, c in reasons.items()},
        "speakers": len(speakers),
        "avg_clips_per_speaker": round(len(kept) / max(1, len(speakers)), 2),
        "hours_in": round(sum(c.seconds_in for c in clips) / 3600, 4),
        "hours_out": round(sum(c.seconds_out for c in kept) / 3600, 4),
        "hours_per_label": {k: round(v, 4) for k, v in sorted(per_label.items())},
        # Phonemes espeak produced that piper's default phoneme map lacks: training would drop them.
        "unknown_phonemes": dict(Counter(p for c in kept for p in c.unknown_phonemes).most_common()),
        "phonemized": sum(1 for c in kept if c.phonemes is not None),
        "train_clips": len(train),
        "validation_clips": len(val),
    }
