"""``voxmill.segment.run(SegmentOptions) -> SegmentResult``: long recordings in, a training dataset out.

Data flow, per recording: a streamed pass through Silero VAD (memory: one flag per 32 ms) -> the cut
plan (pieces in pauses, :mod:`voxmill.segment.cuts`), kept in the state folder -> a second streamed
pass cuts windows of consecutive pieces, shared with the engine's workers -> each window transcribed
once with word timestamps and its clips filtered and staged (:mod:`voxmill.segment.task`) -> with a
book, every clip's words aligned to it (:mod:`voxmill.segment.align`) and clips whose recognized text
is too far from their span dropped -> the dataset writers prepare uses (``engine.datasets``),
``report.jsonl`` (one line per clip) and ``stats.json``.

Memory stays flat in the recording's length: audio is only ever held a block, and a few windows, at a
time; what grows is one small record per clip (text and times).

``--resume``: plans and finished windows are kept in ``OUT/.voxmill`` (a window's journal id holds a
digest of the file's identity, the window and the options), so a resumed run decodes no recording whose
windows are all done and transcribes no window twice; the output of a killed-and-resumed run is the
same, byte for byte, as an uninterrupted one (ASR without temperature fallback is deterministic).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxmill import errors
from voxmill.audio import blocks, probe
from voxmill.audio.io import atomic_path, write_text_atomic
from voxmill.audio.vad import VAD_RATE, SpeechDetector, SpeechTracker, VadOptions
from voxmill.corpus import collision_key
from voxmill.corpus.balance import split_validation
from voxmill.corpus.layouts import dataset_files
from voxmill.engine import Dropped, Failed, Journal, Ok, Pool, SharedArray, ThreadPlan, share
from voxmill.engine.datasets import check_staged, write_dataset
from voxmill.engine.filters import DropCode
from voxmill.engine.outputs import OutputFolder
from voxmill.errors import Reason
from voxmill.models import ModelManager, ModelSpec, Registry
from voxmill.segment.align import align, read_reference
from voxmill.segment.cuts import Piece, Window, plan_pieces, plan_windows
from voxmill.segment.options import SegmentOptions
from voxmill.segment.task import RECORD_VERSION, ClipRecord, SegmentTask, WindowItem, WindowResult
from voxmill.text import clean_text

__all__ = ["SegmentClip", "SegmentResult", "run"]

PLAN_VERSION = "segment-plan/1"
BLOCK_SECONDS = 30.0
# Speech runs as the cut planner wants them: every pause of two VAD windows (64 ms) or more is a place
# to cut, and no padding (the planner keeps its own silence at the edges).
CUT_VAD = VadOptions(threshold=0.5, min_speech=0.1, min_silence=0.064, pad=0.0)


@dataclass(frozen=True)
class SegmentClip:
    """A kept clip, as the dataset writers read it (``corpus.layouts.DatasetClip``)."""

    id: str
    file_id: str
    text: str
    speaker: str | None
    seconds_out: float
    record: ClipRecord
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class SegmentResult:
    """What one run did: ``stats`` (also ``OUT/stats.json``) and the engine ``plan`` it ran with."""

    out: Path
    stats: dict[str, Any]
    plan: ThreadPlan | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.stats["counts"].get("failed", 0) else 0


@dataclass
class _File:
    """One recording: its path, the id prefix of its clips, its identity digest, and (once planned) its
    length and pieces, or why it could not be read."""

    path: Path
    prefix: str
    key: str
    seconds: float = 0.0
    pieces: list[Piece] = field(default_factory=list)
    error: str | None = None
    code: str = ""

    @property
    def source(self) -> str:
        return str(self.path)


def run(opts: SegmentOptions) -> SegmentResult:
    """Segment ``opts.inputs`` into ``opts.out``; see the module docstring. Bad options raise ConfigError,
    a missing recording or unreadable book DatasetError, before the output folder is touched."""
    opts.validate()
    _check_recordings([Path(p) for p in opts.inputs])
    reference = read_reference(opts.text) if opts.text is not None else None
    registry = Registry()
    try:
        asr = registry.resolve(opts.asr)
    except errors.ModelNotFound as exc:
        raise errors.ConfigError(f"--asr {opts.asr}: {exc}") from None
    if asr.kind != "whisper":
        raise errors.ConfigError(f"--asr {opts.asr}: not a faster-whisper model (try whisper:tiny.en)")
    if asr.language is not None and opts.language not in (None, asr.language):
        # Known from the model's name (tiny.en): a usage error now, not every window failing later.
        raise errors.ConfigError(f"--language {opts.language}: {asr.name} only knows {asr.language!r}")
    inputs = [Path(p) for p in opts.inputs] + ([Path(opts.text)] if opts.text is not None else [])
    manager = ModelManager(budget_bytes=opts.run.budget, registry=registry, device="cpu")
    try:
        with (
            OutputFolder(opts.out, "segment", inputs, resume=opts.resume, overwrite=opts.overwrite) as guard,
            manager.lease(registry.resolve("silero-vad")) as detector,
        ):
            return _segment(opts, guard, asr, detector, reference)
    finally:
        manager.close()


def _check_recordings(paths: list[Path]) -> None:
    """DatasetError for a recording that is not there, ConfigError for one given twice (or through a
    link): it would be two copies of every clip, the validation split holding training clips."""
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        if not path.is_file():
            raise errors.DatasetError(f"{path}: no such recording")
        st = os.stat(path)
        first = seen.setdefault((st.st_dev, st.st_ino), path)
        if first is not path:
            raise errors.ConfigError(f"{path}: the same recording as {first}; give each recording once")


def _identity(path: Path) -> str:
    st = os.stat(path)
    # ctime too: bytes rewritten in place with the size and mtime kept change it, and no user can set it.
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _files(opts: SegmentOptions, cutting: str) -> list[_File]:
    """One record per recording; clip ids start with the file's stem, made unique (``book``, ``book-2``)
    also where a case-folding file system would merge two stems."""
    paths = [Path(p) for p in opts.inputs]
    stems = {collision_key(p.stem or "clip") for p in paths}  # each input keeps its own stem where it can
    files: list[_File] = []
    taken: set[str] = set()
    for path in paths:
        stem = path.stem or "clip"
        prefix, n = stem, 1
        while collision_key(prefix) in taken or (n > 1 and collision_key(prefix) in stems):
            n += 1  # the next free "-N", never another input's own stem
            prefix = f"{stem}-{n}"
        taken.add(collision_key(prefix))
        files.append(_File(path, prefix, _digest(cutting, _identity(path))))
    return files


def _segment(
    opts: SegmentOptions, guard: OutputFolder, asr: ModelSpec, detector: SpeechDetector, reference: str | None
) -> SegmentResult:
    out, formats = opts.out, set(opts.formats)
    guard.check_free(dataset_files(opts.formats, [], [], []))
    cutting = [PLAN_VERSION, dataclasses.asdict(CUT_VAD), opts.min_seconds, opts.max_seconds, opts.keep_silence,
               opts.break_pause]  # fmt: skip
    filters = opts.clip_filters()
    task = SegmentTask(
        asr=asr,
        stage_dir=str(guard.state / "clips"),
        sample_rate=opts.sample_rate,
        filters=filters,
        language=opts.language,
        beam_size=opts.beam_size,
        loudness=opts.loudness,
        peak_ceiling=opts.peak_ceiling,
        write_wav=bool({"piper", "nemo"} & formats),
        write_flac="hf" in formats,
    )
    # Everything that shapes a window's clips: part of its journal id, so other options re-run it.
    clipping = _digest(cutting, RECORD_VERSION, asr.name, str(asr.path), dataclasses.asdict(filters),
                       opts.sample_rate, opts.language, opts.beam_size, opts.loudness, opts.peak_ceiling,
                       task.write_wav, task.write_flac)  # fmt: skip
    files = _files(opts, _digest(cutting))
    (guard.state / "plans").mkdir(parents=True, exist_ok=True)
    pool = Pool.from_options(opts.run, backend=opts.run.backend_or("process"), description="segmenting",
                             prefetch=1)  # fmt: skip
    live: dict[str, SharedArray] = {}
    records: list[ClipRecord] = []
    failed: list[dict[str, Any]] = []
    journal = Journal(guard.state / "journal.db", encode=WindowResult.to_record, decode=_restore(task))
    with journal:
        items = _items(files, opts, clipping, guard.state / "plans", detector, journal, live)
        for outcome in pool.imap(task, items, journal=journal, key=lambda item: item.journal_id,
                                 timeout=opts.run.timeout):  # fmt: skip
            item: WindowItem = outcome.item
            live.pop(item.journal_id, _NO_AUDIO).release()
            result = outcome.result
            if isinstance(result, Ok):
                records.extend(result.value.records)
            else:
                code = result.code if isinstance(result, (Failed, Dropped)) else Reason.ERROR
                for piece, clip_id in zip(item.window.pieces, item.ids, strict=True):
                    failed.append(_failed_entry(clip_id, item.source, piece, str(code), str(result)))
    silent = []  # a recording with no speech at all still says so in the report
    for file in files:
        if file.error is not None:
            failed.append({"id": file.prefix, "source": file.source, "status": "failed", "code": file.code,
                           "reason": file.error})  # fmt: skip
        elif not file.pieces:
            silent.append({"id": file.prefix, "source": file.source, "status": "dropped",
                           "code": DropCode.NO_SPEECH.value, "reason": "no speech found (VAD)"})  # fmt: skip
    entries, kept = _finish(records, reference, opts)
    train, val = split_validation(kept, opts.val_fraction, None, seed=0)
    files_out = dataset_files(opts.formats, kept, train, val)
    guard.own(files_out)  # recorded before written: a run killed while writing still knows its files
    stage = guard.state / "clips"
    write_dataset(out, formats, train, val, lambda clip, suffix: clip.record.staged(stage, suffix), opts.sample_rate,
                  opts.espeak)  # fmt: skip
    entries += silent + failed
    stats = _stats(files, entries, kept)
    _write_report(out / "report.jsonl", entries)
    write_text_atomic(out / "stats.json", json.dumps(stats, ensure_ascii=False, indent=2) + "\n")
    guard.prune(files_out)
    if not failed:
        guard.clear_state()  # every window went through: plans, journal and staged clips have served
    return SegmentResult(out, stats, pool.plan)


class _NoAudio:
    def release(self) -> None:
        pass


_NO_AUDIO: Any = _NoAudio()


def _failed_entry(clip_id: str, source: str, piece: Piece, code: str, reason: str) -> dict[str, Any]:
    return {"id": clip_id, "source": source, "start": round(piece.start, 3), "end": round(piece.end, 3),
            "status": "failed", "code": code, "reason": reason}  # fmt: skip


def _restore(task: SegmentTask) -> Any:
    """A journal record back as a WindowResult, only when every staged clip it names is intact; anything
    else raises ValueError and the window simply runs again."""
    stage = Path(task.stage_dir)

    def decode(key: str, data: Any) -> WindowResult:
        result = WindowResult.from_record(data)
        wanted = [(".wav", task.write_wav), (".flac", task.write_flac)]
        for record in result.records:
            if record.status != "ok" or not key.startswith(record.key):
                if record.status == "ok":
                    raise ValueError("record belongs to another window")
                continue
            for suffix in (s for s, on in wanted if on):
                check_staged(record.staged(stage, suffix), task.sample_rate, record.seconds_out)
        return result

    return decode


# ---- planning and cutting ---------------------------------------------------------------------------


def _plan(file: _File, opts: SegmentOptions, plans: Path, detector: SpeechDetector) -> None:
    """``file.pieces`` and ``file.seconds``: from the plan an earlier run kept, else one VAD pass."""
    saved = plans / f"{file.key}.json"
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        if stat.S_ISREG(os.lstat(saved).st_mode) and os.lstat(saved).st_size < 1 << 26:
            data = json.loads(saved.read_text(encoding="utf-8"))
            if data["version"] == PLAN_VERSION:
                file.seconds = float(data["seconds"])
                file.pieces = [Piece.from_list(p) for p in data["pieces"]]
                return
    tracker = SpeechTracker(VAD_RATE, CUT_VAD, detector)
    for block in blocks(file.path, seconds=BLOCK_SECONDS, sr=VAD_RATE, mono=True):
        tracker.add(block.samples)
    runs = [s.seconds(VAD_RATE) for s in tracker.segments()]
    file.seconds = tracker.frames / VAD_RATE
    file.pieces = plan_pieces(runs, file.seconds, opts.min_seconds, opts.max_seconds, opts.keep_silence,
                              opts.break_pause)  # fmt: skip
    data = {"version": PLAN_VERSION, "seconds": file.seconds, "pieces": [p.to_list() for p in file.pieces]}
    with atomic_path(saved) as tmp:
        tmp.write_text(json.dumps(data), encoding="utf-8")


def _items(
    files: list[_File],
    opts: SegmentOptions,
    clipping: str,
    plans: Path,
    detector: SpeechDetector,
    journal: Journal,
    live: dict[str, SharedArray],
) -> Iterator[WindowItem]:
    """Every window of every recording, planned and cut as the engine asks for them."""
    for file in files:
        try:
            probe(file.path)
            _plan(file, opts, plans, detector)
        except errors.AudioError as exc:
            file.error, file.code = str(exc), _code(exc)
            continue
        windows = plan_windows(file.pieces)
        made = [_item(file, window, clipping) for window in windows]
        if all(journal.lookup(item.journal_id) is not None for item in made):
            yield from made  # all done, and every record intact: the journal answers, nothing is decoded
            continue
        try:
            for item, audio in zip(made, _cut(file.path, windows, opts.sample_rate), strict=False):
                shared = share(audio)
                live[item.journal_id] = shared
                yield dataclasses.replace(item, audio=shared)
        except errors.AudioError as exc:  # the file broke off mid-way: the windows not cut are failed
            file.error, file.code = str(exc), _code(exc)


def _code(exc: errors.AudioError) -> str:
    """The reason code of a recording that could not be read (a Reason: decode, truncated, empty...)."""
    code = getattr(exc, "code", None)
    return str(code) if isinstance(code, Reason) else str(Reason.DECODE)


def _item(file: _File, window: Window, clipping: str) -> WindowItem:
    ids = tuple(f"{file.prefix}_{piece.index:05d}" for piece in window.pieces)
    key = _digest(clipping, file.key, window.start, window.end, [p.to_list() for p in window.pieces])
    return WindowItem(file.source, window, ids, SharedArray(""), key)


def _cut(path: Path, windows: list[Window], sr: int) -> Iterator[np.ndarray]:
    """Each window's samples (mono, at ``sr``), in one streamed pass: a block and a window in memory."""
    buffer = np.zeros(0, dtype=np.float32)
    offset = 0  # the recording's sample index of buffer[0]
    source = blocks(path, seconds=BLOCK_SECONDS, sr=sr, mono=True)
    for window in windows:
        lo, hi = round(window.start * sr), round(window.end * sr)
        while offset + buffer.shape[0] < hi:
            block = next(source, None)
            if block is None:
                break
            buffer = np.concatenate((buffer, block.samples))
        yield np.ascontiguousarray(buffer[max(0, lo - offset) : max(0, hi - offset)])
        buffer = buffer[max(0, hi - offset) :].copy()  # what is consumed goes: memory stays at a block
        offset = max(offset, hi)


# ---- texts, report and stats -----------------------------------------------------------------------


def _finish(
    records: list[ClipRecord], reference: str | None, opts: SegmentOptions
) -> tuple[list[dict[str, Any]], list[SegmentClip]]:
    """Each clip's report entry and the clips kept, with their texts: the book's span (and its CER against
    what was recognized), or the recognized text."""
    heard = [r for r in records if r.words]
    span_of = {}
    if reference is not None:
        spans = align(reference, [list(r.words) for r in heard], opts.language)
        span_of = dict(zip((r.id for r in heard), spans, strict=True))
    entries, kept = [], []
    for record in records:
        entry: dict[str, Any] = {"id": record.id, "source": record.source, "start": record.start, "end": record.end,
                                 "duration": record.seconds_out, "asr_text": record.asr_text}  # fmt: skip
        text, cer = record.asr_text, None
        status, code, reason = record.status, record.code, record.reason
        if status == "ok" and reference is not None:
            span = span_of.get(record.id)
            if span is None:
                status, code, reason = "dropped", DropCode.NOT_IN_TEXT.value, "not in text: no word found in the book"
            else:
                text, cer = clean_text(span.text), round(span.cer, 4)
                if span.cer > opts.max_cer:
                    status, code = "dropped", DropCode.HIGH_CER.value
                    reason = f"high CER: {span.cer:.1%} > {opts.max_cer:.1%} against the book"
        entry.update(text=text, cer=cer, status=status)
        if status != "ok":
            entry.update(code=code, reason=reason)
        else:
            kept.append(SegmentClip(record.id, record.file_id, text, opts.speaker, record.seconds_out, record))
        entries.append(entry)
    return entries, kept


def _write_report(path: Path, entries: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(entry, ensure_ascii=False) + "\n")


def _stats(files: list[_File], entries: list[dict[str, Any]], kept: list[SegmentClip]) -> dict[str, Any]:
    counts = Counter(e["status"] for e in entries)
    reasons = Counter(str(e.get("code")) for e in entries if e["status"] != "ok")
    cers = [e["cer"] for e in entries if e["status"] == "ok" and e.get("cer") is not None]
    return {
        "inputs": [f.source for f in files],
        "hours_in": round(sum(f.seconds for f in files) / 3600, 4),
        "hours_kept": round(sum(c.seconds_out for c in kept) / 3600, 4),
        "clips": sum(1 for e in entries if "start" in e),
        "kept": len(kept),
        "counts": dict(counts),
        "drop_reasons": dict(reasons.most_common()),
        "median_cer": round(float(np.median(cers)), 4) if cers else None,
        "failed_files": [f.source for f in files if f.error is not None],
    }
