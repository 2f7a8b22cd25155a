"""``voxmill.prepare.run(PrepareOptions) -> PrepareResult``: corpora in, a training-ready dataset out.

The output folder is guarded (:class:`voxmill.engine.outputs.OutputFolder`): never an input or inside
one, one run at a time, an earlier run's folder only with ``resume`` or ``overwrite``, and only files
voxmill recorded as its own are ever removed. Each row's journal id holds a fingerprint of the row,
its audio and the options, so a resumed run re-runs whatever changed. After a run that went through
every row, the staging (journal, staged WAV/FLAC copies) is removed, and a resume of that run on the
same rows and options does nothing (:mod:`voxmill.prepare.finished`); a changed one runs every row.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.audio.io import write_text_atomic
from voxmill.corpus import Problem, Row, Source, collision_key, read_rows
from voxmill.corpus.balance import cap_per_speaker, split_validation
from voxmill.corpus.layouts import LAYOUTS, dataset_files
from voxmill.engine import Dropped, Failed, Journal, Ok, Pool, RunOptions, ThreadPlan, check_number
from voxmill.engine.datasets import check_staged, write_dataset
from voxmill.engine.outputs import OutputFolder
from voxmill.engine.report import RowReport
from voxmill.errors import Reason
from voxmill.models import ModelSpec, Registry
from voxmill.prepare.finished import Fingerprint, forget, outputs_digest, read_mark, write_mark
from voxmill.prepare.stats import PrepareStats
from voxmill.prepare.steps import Clip, ClipOptions, DropCode, PrepareItem, PrepareTask
from voxmill.text.phonemes import Phonemizer

__all__ = ["PrepareOptions", "PrepareResult", "run"]


@dataclass
class PrepareOptions:
    """Everything ``voxmill prepare`` can be told; the CLI only fills this in.

    ``clip``: what happens to each clip. ``max_per_speaker``: keep at most N clips per speaker (seeded);
    ``val_fraction`` / ``val_size``: a speaker-aware validation split (``seed``). ``resume``: continue an
    interrupted run in ``out``; ``overwrite``: replace an earlier run's output there (only files
    voxmill wrote). ``allow_outside``: read audio that metadata names outside its dataset folder.
    ``fail_fast``: stop at the first failed row. ``run``: workers, backend and the rest of the engine's options.
    """

    sources: list[Source]
    out: Path
    formats: list[str] = field(default_factory=lambda: ["piper"])
    clip: ClipOptions = field(default_factory=ClipOptions)
    max_per_speaker: int | None = None
    seed: int = 0
    val_fraction: float | None = None
    val_size: int | None = None
    resume: bool = False
    overwrite: bool = False
    allow_outside: bool = False
    fail_fast: bool = False
    run: RunOptions = field(default_factory=RunOptions)

    def validate(self) -> None:
        """Raise ConfigError naming the option and its allowed range for any value out of range."""
        self.run.validate()
        self.clip.validate()
        unknown = [f for f in self.formats if f not in LAYOUTS]
        if unknown or not self.formats:
            raise errors.ConfigError(f"--format: unknown {', '.join(unknown) or '(none)'}; use {', '.join(LAYOUTS)}")
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
    """What one run did: ``stats`` (also ``OUT/stats.json``), and the ``plan`` (workers x threads on a
    backend) it ran with; None when it ran nothing (``unchanged``: a finished run resumed)."""

    out: Path
    stats: PrepareStats
    plan: ThreadPlan | None = None
    unchanged: bool = False  # --resume found this very run finished in OUT: nothing was run or written

    @property
    def counts(self) -> dict[str, int]:
        return self.stats.counts

    @property
    def layouts(self) -> list[str]:
        """How each source was read (``PATH: layout``)."""
        return self.stats.sources

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
    """Prepare ``opts.sources`` into ``opts.out``; see the module docstring. Bad options raise
    ConfigError and an unreadable source DatasetError, before the output folder is touched."""
    opts.validate()
    for source in opts.sources:
        if not source.path.exists():
            raise errors.DatasetError(f"{source.path}: no such file or folder")
    if opts.clip.espeak_voice:
        Phonemizer(opts.clip.espeak_voice)  # an unknown voice is a usage error, not a failure on every clip
    # Resolved here, once: the workers lease this spec, and a missing model stops the run before any work.
    vad = Registry().resolve("silero-vad") if opts.clip.trim else None
    inputs = [_root(s) for s in opts.sources]
    with OutputFolder(opts.out, "prepare", inputs, resume=opts.resume, overwrite=opts.overwrite) as guard:
        return _prepare(opts, guard, vad)


def _prepare(opts: PrepareOptions, guard: OutputFolder, vad: ModelSpec | None) -> PrepareResult:
    out = opts.out
    formats = set(opts.formats)
    # The fixed names are known now: a user's own metadata.csv in OUT stops the run before any work.
    validation = ["metadata_val.csv"] if "piper" in formats and (opts.val_fraction or opts.val_size) else []
    guard.check_free(dataset_files(opts.formats, [], [], []) + validation)
    stage = guard.state / "clips"
    task = PrepareTask(
        opts.clip,
        str(stage),
        for_piper="piper" in formats,
        write_wav=bool({"piper", "nemo"} & formats),
        write_flac="hf" in formats,
        vad=vad,
    )
    digest = task.digest
    # What shapes the dataset besides each clip; a finished run's mark holds it (see prepare.finished).
    shaping = [digest, sorted(formats), opts.max_per_speaker, opts.seed, opts.val_fraction, opts.val_size,
               str(out.resolve())]  # fmt: skip
    if guard.resumed:
        unchanged = _unchanged(opts, guard, shaping, digest)
        if unchanged is not None:
            return PrepareResult(out, unchanged, unchanged=True)
    forget(guard.state)
    stage.mkdir(parents=True, exist_ok=True)
    fingerprint = Fingerprint(shaping)
    layouts: list[str] = []
    per_source: list[int] = []
    clips: list[Clip] = []
    stopped = False
    pool = Pool.from_options(opts.run, description="preparing", window=64)
    journal = Journal(guard.state / "journal.db", encode=Clip.to_record, decode=partial(_restore, stage, task))
    with journal, RowReport(guard.state / "report.partial.jsonl") as report:
        rows = _counted(_rows(opts.sources, layouts, opts.allow_outside), layouts, per_source)
        items = (_fingerprinted(PrepareItem.of(row, digest), fingerprint) for row in rows)
        outcomes = pool.imap(task, items, journal=journal, key=lambda item: item.key, timeout=opts.run.timeout)
        for outcome in outcomes:
            row: Row = outcome.item.row
            entry: dict[str, Any] = {"id": row.id, "source": row.source}
            result = outcome.result
            if isinstance(result, Ok):
                clips.append(_shared(result.value, row))
                entry["status"] = "ok"
            elif isinstance(result, Dropped):
                entry.update(status="dropped", reason=result.reason, code=result.code or "dropped")
            else:
                # A row its reader refused says why in its Problem; the rest by the failure's code.
                code = (row.problem if row.error else None) or result.code
                entry.update(status="failed", reason=_reason(result), code=str(code))
            report.add(entry)
            if opts.fail_fast and isinstance(result, Failed):
                stopped = True
                break
    if not stopped:
        _check_rows_read(opts.sources, layouts, per_source, guard)

    kept, capped = cap_per_speaker(clips, opts.max_per_speaker, opts.seed)
    train, val = split_validation(kept, opts.val_fraction, opts.val_size, opts.seed)
    files = dataset_files(opts.formats, kept, train, val)
    guard.own(files)  # recorded before written: a run killed while writing still knows its files
    write_dataset(
        out, formats, train, val, partial(_staged, stage), opts.clip.sample_rate, opts.clip.espeak_voice,
        keep_staged=stopped,
    )  # fmt: skip
    cap_reason = f"speaker cap ({opts.max_per_speaker} per speaker)"
    report.write(out / "report.jsonl", {c.id for c in capped}, cap_reason, DropCode.SPEAKER_CAP.value)
    stats = PrepareStats.of(layouts, report.rows, report.counts(), report.reasons(), clips, kept, len(val))
    write_text_atomic(out / "stats.json", json.dumps(stats.to_dict(), ensure_ascii=False, indent=2) + "\n")
    guard.prune(files)  # an earlier run's files this run did not write (rows now dropped, old shards)
    if not stopped:
        guard.clear_state()  # every row went through: the journal and staged copies have served
        if not stats.counts.get("failed"):
            write_mark(guard.state, fingerprint.hexdigest(), outputs_digest(out, guard.owned), stats)
    return PrepareResult(out, stats, pool.plan)


def _fingerprinted(item: PrepareItem, fingerprint: Fingerprint) -> PrepareItem:
    fingerprint.add(item.key)
    return item


def _unchanged(opts: PrepareOptions, guard: OutputFolder, shaping: list[Any], digest: str) -> PrepareStats | None:
    """The stats of the finished run in OUT when this resume would make exactly that run again (the
    same rows, audio and options, and every file it wrote still there); else None."""
    mark = read_mark(guard.state)
    if mark is None or outputs_digest(opts.out, guard.owned) != mark[1]:  # a file deleted, edited or replaced
        return None
    fingerprint = Fingerprint(shaping)
    for row in _rows(opts.sources, [], opts.allow_outside):
        fingerprint.add(PrepareItem.of(row, digest).key)
    return mark[2] if fingerprint.hexdigest() == mark[0] else None


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


def _staged(stage: Path, clip: Clip, suffix: str) -> Path:
    return clip.staged(stage, suffix)


def _restore(stage: Path, task: PrepareTask, key: str, data: Any) -> Clip:
    """A journal record back as a Clip, only when it is one this run would make and its staged files
    are intact; anything else raises ValueError and the row simply runs again."""
    clip = Clip.from_record(data)
    if PrepareItem(Row(clip.id, ""), clip.fingerprint).key != key:
        raise ValueError("record belongs to another row")
    wanted = [(".wav", task.write_wav), (".flac", task.write_flac)]
    for suffix in (s for s, on in wanted if on):
        check_staged(clip.staged(stage, suffix), task.clip.sample_rate, clip.seconds_out)
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
    # A known failure's message says what is wrong ("path: truncated ..."); an unexpected exception
    # keeps its type, which is most of what its message means.
    return str(failed) if failed.code == Reason.ERROR else failed.message
