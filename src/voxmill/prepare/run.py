"""``voxmill.prepare.run(PrepareOptions) -> PrepareResult``: corpora in, a training-ready dataset out.

The output folder is guarded (:class:`voxmill.engine.outputs.OutputFolder`): never an input or inside
one, one run at a time, an earlier run's folder only with ``resume`` or ``overwrite``, and only files
voxmill recorded as its own are ever removed. Each row's journal id holds a fingerprint of the row,
its audio and the options, so a resumed run re-runs whatever changed. After a run that went through
every row, the staging (journal, staged WAV/FLAC copies) is removed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import soundfile as sf

from voxmill import errors
from voxmill.corpus import Problem, Row, Source, collision_key, read_rows
from voxmill.engine import Dropped, Failed, Journal, Ok, Pool, RunOptions, check_number
from voxmill.engine.outputs import OutputFolder
from voxmill.prepare.balance import cap_per_speaker, split_validation
from voxmill.prepare.report import RowReport
from voxmill.prepare.sinks import (
    OUTPUT_FORMATS,
    hf_files,
    place_wavs,
    write_hf,
    write_nemo,
    write_piper,
    write_text,
)
from voxmill.prepare.steps import Clip, ClipOptions, DropCode, PrepareItem, PrepareTask, options_digest
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
    overwrite: bool = False  # replace an earlier run's output in OUT (only files voxmill wrote there)
    allow_outside: bool = False  # read audio that metadata names outside its dataset folder
    fail_fast: bool = False
    progress: bool | None = None

    def validate(self) -> None:
        """Raise ConfigError naming the option and its allowed range for any value out of range."""
        check_number("--sample-rate", self.sample_rate, 8000, 192000, integer=True)
        check_number("--keep-silence", self.keep_silence, 0, 60)
        if self.loudness is not None:
            check_number("--loudness", self.loudness, -70, 0)
        check_number("peak ceiling", self.peak_ceiling, -60, 0)
        check_number("--min-duration", self.min_duration, 0, 3600)
        check_number("--max-duration", self.max_duration, 0, math.inf)
        if self.max_duration <= 0 or self.max_duration < self.min_duration:
            raise errors.ConfigError(
                f"--max-duration {self.max_duration:g}: must be above 0 and at least --min-duration "
                f"({self.min_duration:g})"
            )
        check_number("--max-clipping", self.max_clipping, 0, 1)
        if self.max_per_speaker is not None:
            check_number("--max-per-speaker", self.max_per_speaker, 1, math.inf, integer=True)
        check_number("--seed", self.seed, -(2**63), 2**63 - 1, integer=True)
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:  # also refuses NaN
            raise errors.ConfigError(f"--val-fraction {self.val_fraction:g}: must be at least 0 and below 1")
        if self.val_size is not None:
            check_number("--val-size", self.val_size, 0, math.inf, integer=True)
        if self.val_fraction and self.val_size:
            raise errors.ConfigError("--val-fraction and --val-size: give one of them, not both")
        if self.resume and self.overwrite:
            raise errors.ConfigError("--resume and --overwrite: give one of them, not both")


@dataclass
class PrepareResult:
    counts: dict[str, int]
    stats: dict[str, Any]
    out: Path
    layouts: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if self.counts.get("failed", 0) else 0


def _rows(sources: list[Source], layouts: list[str], allow_outside: bool = False) -> Iterator[Row]:
    """Rows of every source in order; a repeated id, or an output name that a case-folding file system
    would give an earlier row's file, fails the later row (nothing is ever silently overwritten)."""
    names: dict[str, tuple[str, str]] = {}  # collision key of the output name -> (id, where) that took it
    for source in sources:
        rows, layout = read_rows(source, allow_outside)
        layouts.append(f"{source.path}: {layout}")
        for row in rows:
            if row.error is None:
                key = collision_key(row.file_id)
                first = names.setdefault(key, (row.id, row.source))
                if first[0] == row.id and first[1] != row.source:
                    yield dataclasses.replace(
                        row, id=f"{row.id}@{row.source}", problem=Problem.DUPLICATE_ID,
                        error=f"duplicate id: {row.id!r} is also at {first[1]}",
                    )  # fmt: skip
                    continue
                if first[0] != row.id:
                    yield dataclasses.replace(
                        row, id=f"{row.id}@{row.source}", problem=Problem.NAME_COLLISION,
                        error=f"output name collision: {row.id!r} would be written as {row.file_id!r}, the file of "
                        f"{first[0]!r} ({first[1]}) on a case-insensitive file system; rename one of them",
                    )  # fmt: skip
                    continue
            yield row


def _counted(rows: Iterator[Row], layouts: list[str], counts: list[int]) -> Iterator[Row]:
    """``rows`` unchanged, counting them per source (``layouts`` grows as each source starts)."""
    for row in rows:
        counts.extend([0] * (len(layouts) - len(counts)))
        counts[-1] += 1
        yield row
    counts.extend([0] * (len(layouts) - len(counts)))


def _root(source: Source) -> Path:
    """What a source reads: a folder, a parquet file's bytes, or a metadata file's folder (its audio)."""
    if source.path.is_dir() or source.path.suffix == ".parquet":
        return source.path
    return source.path.parent


def run(opts: PrepareOptions) -> PrepareResult:
    RunOptions(opts.workers, opts.backend, opts.ray_address, progress=opts.progress).validate()
    opts.validate()
    unknown = [f for f in opts.formats if f not in OUTPUT_FORMATS]
    if unknown or not opts.formats:
        raise errors.ConfigError(f"--format: unknown {', '.join(unknown) or '(none)'}; use {', '.join(OUTPUT_FORMATS)}")
    for source in opts.sources:
        if not source.path.exists():
            raise errors.DatasetError(f"{source.path}: no such file or folder")
    if opts.espeak_voice:
        Phonemizer(opts.espeak_voice)  # an unknown voice is a usage error, not a failure on every clip
    inputs = [_root(s) for s in opts.sources]
    with OutputFolder(opts.out, "prepare", inputs, resume=opts.resume, overwrite=opts.overwrite) as guard:
        return _prepare(opts, guard)


def _prepare(opts: PrepareOptions, guard: OutputFolder) -> PrepareResult:
    out = opts.out
    # The fixed names are known now: a user's own metadata.csv in OUT stops the run before any work.
    validation = ["metadata_val.csv"] if "piper" in opts.formats and (opts.val_fraction or opts.val_size) else []
    guard.check_free(_output_files(opts.formats, [], [], []) + validation)
    stage = guard.state / "clips"
    stage.mkdir(parents=True, exist_ok=True)
    # The per-clip settings are PrepareOptions' fields of the same names, plus what the outputs imply.
    shared = {f.name: getattr(opts, f.name) for f in dataclasses.fields(ClipOptions) if hasattr(opts, f.name)}
    clip_options = ClipOptions(
        stage_dir=str(stage),
        for_piper="piper" in opts.formats,
        write_flac="hf" in opts.formats,
        write_wav=bool({"piper", "nemo"} & set(opts.formats)),
        **shared,
    )
    digest = options_digest(clip_options)
    layouts: list[str] = []
    per_source: list[int] = []
    clips: list[Clip] = []
    stopped = False
    pool = Pool(workers=opts.workers, backend=opts.backend, progress=opts.progress, description="preparing", window=64,
                address=opts.ray_address)  # fmt: skip
    journal = Journal(guard.state / "journal.db", encode=Clip.to_record, decode=partial(_restore, stage, clip_options))
    with journal, RowReport(guard.state / "report.partial.jsonl") as report:
        rows = _counted(_rows(opts.sources, layouts, opts.allow_outside), layouts, per_source)
        items = (PrepareItem.of(row, digest) for row in rows)
        for outcome in pool.imap(PrepareTask(clip_options), items, journal=journal, key=lambda item: item.key):
            row: Row = outcome.item.row
            entry: dict[str, Any] = {"id": row.id, "source": row.source}
            result = outcome.result
            if isinstance(result, Ok):
                clips.append(_shared(result.value, row))
                entry["status"] = "ok"
            elif isinstance(result, Dropped):
                entry.update(status="dropped", reason=result.reason, code=result.code or "dropped")
            else:
                entry.update(status="failed", reason=_reason(result), code=row.problem or result.error)
            report.add(entry)
            if opts.fail_fast and isinstance(result, Failed):
                stopped = True
                break
    if not stopped:
        _check_rows_read(opts.sources, layouts, per_source, guard)

    kept, capped = cap_per_speaker(clips, opts.max_per_speaker, opts.seed)
    train, val = split_validation(kept, opts.val_fraction, opts.val_size, opts.seed)
    files = _output_files(opts.formats, kept, train, val)
    guard.own(files)  # recorded before written: a run killed while writing still knows its files
    if {"piper", "nemo"} & set(opts.formats):
        place_wavs(kept, stage, out, keep_staged=stopped)
    if "piper" in opts.formats:
        write_piper(train, val, out, opts.sample_rate, opts.espeak_voice)
    if "nemo" in opts.formats:
        write_nemo(train, val, out)
    if "hf" in opts.formats:
        write_hf(train, val, out, stage)
    cap_reason = f"speaker cap ({opts.max_per_speaker} per speaker)"
    report.write(out / "report.jsonl", {c.id for c in capped}, cap_reason, DropCode.SPEAKER_CAP.value)
    stats = _stats(report, clips, kept, train, val, layouts)
    write_text(out / "stats.json", json.dumps(stats, ensure_ascii=False, indent=2) + "\n")
    guard.prune(files)  # an earlier run's files this run did not write (rows now dropped, old shards)
    if not stopped:
        guard.clear_state()  # every row went through: the journal and staged copies have served
    return PrepareResult(report.counts(), stats, out, layouts)


def _check_rows_read(sources: list[Source], layouts: list[str], per_source: list[int], guard: OutputFolder) -> None:
    """A source that gave no rows at all is a wrong path or format, not an empty success."""
    for source, layout, count in zip(sources, layouts, per_source, strict=False):
        if count == 0:
            if not any(per_source):
                guard.clear_state()  # nothing was done: leave nothing to resume
            how = layout.removeprefix(f"{source.path}: ")
            raise errors.DatasetError(
                f"no rows read from {source.path} (read as {how}); check the path, or name the layout "
                "with --source-format"
            )


def _output_files(formats: list[str], kept: list[Clip], train: list[Clip], val: list[Clip]) -> list[str]:
    """Every file this run writes, relative to OUT."""
    files = ["report.jsonl", "stats.json"]
    if {"piper", "nemo"} & set(formats):
        files += [f"wavs/{c.file_id}.wav" for c in kept]
    if "piper" in formats:
        files += ["metadata.csv", "config.json"] + (["metadata_val.csv"] if val else [])
    if "nemo" in formats:
        files += ["manifest_train.jsonl", "manifest_val.jsonl"]
    if "hf" in formats:
        files += hf_files(train, val)
    return files


def _restore(stage: Path, options: ClipOptions, key: str, data: Any) -> Clip:
    """A journal record back as a Clip, only when it is one this run would make and its staged files
    are intact; anything else raises ValueError and the row simply runs again."""
    clip = Clip.from_record(data)
    if PrepareItem(Row(clip.id, ""), clip.fingerprint).key != key:
        raise ValueError("record belongs to another row")
    wanted = [(".wav", options.write_wav), (".flac", options.write_flac)]
    for suffix in (s for s, on in wanted if on):
        path = clip.staged(stage, suffix)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):  # a symlink could pull in any file
                raise ValueError(f"{path}: not a regular file")
            info = sf.info(str(path))
        except (OSError, RuntimeError) as exc:
            raise ValueError(f"{path}: staged clip unreadable: {exc}") from None
        if (info.samplerate, info.channels, info.frames) != (
            options.sample_rate, 1, round(clip.seconds_out * options.sample_rate)
        ):  # fmt: skip
            raise ValueError(f"{path}: staged clip damaged")
    return clip


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
    # Decode errors already say "path: reason", row errors say what is wrong; others get their type.
    if failed.error in ("AudioDecodeError", "BadRow", "ValueError"):
        return failed.message
    return str(failed)


def _stats(
    report: RowReport,
    clips: list[Clip],
    kept: list[Clip],
    train: list[Clip],
    val: list[Clip],
    layouts: list[str],
) -> dict[str, Any]:
    counts = report.counts()
    reasons, examples = report.reasons()
    speakers = Counter(c.speaker or "" for c in kept)
    per_label: dict[str, float] = defaultdict(float)
    for clip in kept:
        for key, value in clip.labels.items():
            per_label[f"{key}={value}"] += clip.seconds_out / 3600
    return {
        "sources": layouts,
        "rows": report.rows,
        "counts": dict(counts),
        "reasons": reasons,
        "reason_examples": examples,
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
