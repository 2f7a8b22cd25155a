"""``synthesize`` and ``synthesize_file``: long texts spoken by a Piper voice in parallel, in order, resumable.

Data flow: text -> chapters -> paragraphs -> sentences -> pieces (text/split) -> engine workers,
each holding the voice from its model manager (one onnxruntime session sized to the worker's thread
budget; each piece's phonemes cut to a bounded length, synth/task.py) -> speech in order -> a raw
part per chapter -> one gain to the loudness target -> file(s).

Where it writes goes through the output guards (engine/outputs.py): never onto the text's own file,
one run per output at a time, and in a chapters folder only the files a synth run wrote are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from voxmill import errors
from voxmill.engine import Ok, Pool
from voxmill.engine import plan as thread_plan
from voxmill.engine.outputs import OutputFile, OutputFolder, sweep_temp_files
from voxmill.models.registry import Registry
from voxmill.synth.notes import Loudness, SynthNote, foreign_script_note, loudness_note
from voxmill.synth.options import WRITABLE, SynthOptions
from voxmill.synth.output import (
    ChapterFile,
    Cue,
    Parts,
    PartWriter,
    chapter_file_name,
    finished_parts,
    level_for,
    read_index,
    tidy_parts,
    write_index,
    write_parts,
    write_srt,
)
from voxmill.synth.result import SynthResult
from voxmill.synth.task import SpeakItem, SpeakTask, Speech
from voxmill.synth.voice import VoiceInfo, resolve_voice
from voxmill.text.split import Chapter, Piece, parse_document, pieces

__all__ = ["AudioChunk", "SynthOptions", "SynthResult", "synthesize", "synthesize_file"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioChunk:
    """One piece of text spoken: ``samples`` (float32, the voice's level) then ``pause`` seconds of silence."""

    samples: np.ndarray
    sample_rate: int
    text: str
    chapter: int
    paragraph: int
    sentence: int
    pause: float

    def with_pause(self) -> np.ndarray:
        return np.concatenate([self.samples, np.zeros(round(self.pause * self.sample_rate), np.float32)])


def _speaker_id(voice: VoiceInfo, speaker: int | str | None) -> int | None:
    if speaker is None:
        return None
    if isinstance(speaker, int) or str(speaker).isdigit():
        return int(speaker)
    if speaker in voice.speakers:
        return voice.speakers[str(speaker)]
    known = ", ".join(sorted(voice.speakers)) or "none (single-speaker voice)"
    raise errors.ConfigError(f"--speaker {speaker!r}: not a speaker of {voice.name}; speakers: {known}")


def _task(voice: VoiceInfo, opts: SynthOptions) -> SpeakTask:
    return SpeakTask(
        voice.name,
        voice.path,
        voice.length_scale if opts.length_scale is None else opts.length_scale,
        voice.noise_scale if opts.noise_scale is None else opts.noise_scale,
        voice.noise_w if opts.noise_w is None else opts.noise_w,
        _speaker_id(voice, opts.speaker),
    )


def _plan(chapters: list[Chapter], voice: VoiceInfo, opts: SynthOptions) -> list[list[Piece]]:
    # A piece without a letter or digit ("...", "—") has nothing to say; the voice would give silence.
    return [[p for p in pieces(c, voice.language, opts.max_chars) if any(ch.isalnum() for ch in p.text)]
            for c in chapters]  # fmt: skip


def _prepare(
    text: str, voice: str | Path, opts: SynthOptions
) -> tuple[VoiceInfo, list[Chapter], list[list[Piece]], list[SynthNote]]:
    """The voice, the chapters that have something to say and their pieces, and notes on the text.
    ConfigError (before anything is spoken) for empty text or a text the voice cannot read at all."""
    info = resolve_voice(voice, Registry())
    chapters = parse_document(text, markdown=bool(opts.markdown))
    plan = _plan(chapters, info, opts)
    if not any(plan):
        raise errors.ConfigError("no text to speak")
    kept = [(c, p) for c, p in zip(chapters, plan, strict=True) if p]
    note = foreign_script_note((p.text for _, chapter in kept for p in chapter), info.name, info.language)
    return info, [c for c, _ in kept], [p for _, p in kept], [note] if note else []


def _speak(
    voice: VoiceInfo, plan: list[list[Piece]], opts: SynthOptions, skip: set[int], failures: list[str]
) -> Iterator[AudioChunk]:
    """AudioChunks of every chapter not in ``skip``, in order; a piece that failed is listed in ``failures``."""
    items = [SpeakItem(c, i, piece.text) for c, chapter in enumerate(plan) if c not in skip
             for i, piece in enumerate(chapter)]  # fmt: skip
    if not items:
        return
    # One onnxruntime thread per worker, whatever the worker count: fastest per core (measured: 2
    # workers x 1 thread 38x realtime vs 1 x 2 threads 33x), and the same float summation order, so
    # the audio does not depend on --workers.
    pool = Pool(workers=opts.workers, backend=opts.backend, threads_per_worker=1, progress=opts.progress,
                description="speaking", address=opts.ray_address)  # fmt: skip
    for outcome in pool.imap(_task(voice, opts), items):
        item: SpeakItem = outcome.item
        piece = plan[item.chapter][item.index]
        result = outcome.result
        if isinstance(result, Ok) and isinstance(result.value, Speech):
            samples = result.value.audio.take()
        else:
            failures.append(f"chapter {item.chapter + 1}, {piece.text[:50]!r}: {result}")
            samples = np.zeros(0, np.float32)
        yield AudioChunk(samples, voice.sample_rate, piece.text, item.chapter, piece.paragraph, piece.sentence,
                         opts.pause(piece))  # fmt: skip


def synthesize(
    text: str, voice: str | Path = "piper:en_US-joe-medium", opts: SynthOptions | None = None
) -> Iterator[AudioChunk]:
    """Speak ``text`` (plain or markdown per ``opts.markdown``): one AudioChunk per piece, in order.

    Streams: pieces are synthesized in parallel ahead of the consumer, within the engine's window.
    The samples are at the voice's own level (no per-sentence normalization); ``synthesize_file``
    applies one gain to the whole output. Raises ConfigError for empty text, an unknown voice or a
    text in a script the voice cannot read (logs a warning when only part of it is), and
    ProcessingError after the last chunk if any piece failed (its chunk has no samples).
    """
    opts = opts or SynthOptions()
    opts.validate()
    info, _, plan, notes = _prepare(text, voice, opts)
    for note in notes:
        log.warning("%s", note.message)
    failures: list[str] = []
    yield from _speak(info, plan, opts, set(), failures)
    if failures:
        raise errors.ProcessingError(f"{len(failures)} piece(s) failed: {'; '.join(failures[:3])}")


def _chapter_hash(chapter: Chapter, plan: list[Piece], voice: VoiceInfo, opts: SynthOptions, suffix: str) -> str:
    """Everything that shapes a chapter's audio; unchanged hash = the chapter need not be spoken again."""
    keys = ("speaker", "length_scale", "noise_scale", "noise_w", "sentence_silence", "paragraph_silence",
            "max_chars", "target_lufs", "peak_ceiling_db")  # fmt: skip
    data = {
        "title": chapter.title,
        "pieces": [(p.text, p.pause) if p.seconds is None else (p.text, p.pause, p.seconds) for p in plan],
        "voice": [voice.name, voice.fingerprint],
        "options": {k: getattr(opts, k) for k in keys},
        "suffix": suffix,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _suffix(output: Path, opts: SynthOptions) -> str:
    """The output's audio suffix; ConfigError now (before any synthesis) for one that cannot be written."""
    if opts.chapters:
        if output.suffix.lower() in WRITABLE:
            raise errors.ConfigError(f"{output}: --chapters needs an output folder, not a file")
        return opts.chapter_format.lower()
    suffix = output.suffix.lower()
    if suffix not in WRITABLE:
        raise errors.ConfigError(f"{output}: output format {suffix or '(none)'} not supported; use "
                                 f"{', '.join(WRITABLE)} or --chapters with a folder")  # fmt: skip
    return suffix


def synthesize_file(
    text: str,
    output: str | Path,
    voice: str | Path = "piper:en_US-joe-medium",
    opts: SynthOptions | None = None,
    source: str | Path | None = None,
) -> SynthResult:
    """Speak ``text`` into ``output``: one audio file (wav/flac/ogg/mp3 by suffix), or with
    ``opts.chapters`` (or when ``output`` is a folder) one file per chapter plus ``chapters.json``.
    With ``opts.srt`` subtitles go beside each audio file. ``source``: the file the text was read
    from, which the output may not overwrite.

    Raises ConfigError (empty text, unknown voice, a text the voice cannot read) and OutputError (the
    output is the source, another run writes there, an unwritable place, a folder an earlier run left
    without ``resume``/``overwrite``) before anything is synthesized; ProcessingError when a piece
    failed (finished chapters are kept: ``resume`` picks up from there).
    """
    opts = opts or SynthOptions()
    opts.validate()
    output = Path(output)
    if not opts.chapters and (output.is_dir() or not output.suffix):
        opts = replace(opts, chapters=True)  # a folder to write into: one file per chapter
    info, chapters, plan, notes = _prepare(text, voice, opts)
    suffix = _suffix(output, opts)
    hashes = [_chapter_hash(c, p, info, opts, suffix) for c, p in zip(chapters, plan, strict=True)]
    inputs = [Path(source)] if source is not None else []
    started = time.perf_counter()
    if opts.chapters:
        with OutputFolder(output, "synth", inputs, resume=opts.resume, overwrite=opts.overwrite) as guard:
            result = _into_folder(guard, chapters, plan, hashes, suffix, opts, info)
    else:
        with OutputFile(output, inputs):
            result = _into_file(output, chapters, plan, hashes, opts, info)
    result.wall_seconds = time.perf_counter() - started
    result.notes = notes + result.notes
    return result


def _speak_parts(
    info: VoiceInfo, plan: list[list[Piece]], hashes: list[str], opts: SynthOptions, folder: Path,
    skip: set[int], parts: Parts, failures: list[str],
) -> int:  # fmt: skip
    """Speak every chapter not in ``skip`` into its part in ``folder``; complete parts go into ``parts``,
    a chapter with a failed piece is not kept. Returns the pieces spoken."""
    failed: set[int] = set()
    writer: PartWriter | None = None
    current = -1
    count = 0
    try:
        for chunk in _speak(info, plan, opts, skip, failures):
            count += 1
            if writer is None or chunk.chapter != current:
                if writer is not None:
                    _close(writer, current, parts, failed)
                current = chunk.chapter
                writer = PartWriter(folder, current, hashes[current], info.sample_rate)
            if chunk.samples.size == 0:
                failed.add(current)
            writer.speech(chunk.sentence, chunk.text, chunk.samples)
            writer.pause(chunk.pause)
        if writer is not None:
            _close(writer, current, parts, failed)
            writer = None
    finally:
        if writer is not None:
            writer.abort()
    return count


def _close(writer: PartWriter, chapter: int, parts: Parts, failed: set[int]) -> None:
    # A chapter with a hole is never final: the next --resume speaks it again.
    if chapter in failed:
        writer.abort()
    else:
        parts[chapter] = writer.commit()


def _result(output: Path, info: VoiceInfo, files: list[ChapterFile | None], count: int, opts: SynthOptions,
            level: Loudness | None) -> SynthResult:  # fmt: skip
    written = [f for f in files if f is not None]
    workers = 0 if not count else thread_plan(opts.workers, 1, items=count).workers
    note = loudness_note(level) if level is not None else None
    return SynthResult(output, info.name, sum(f.duration for f in written), 0.0, count, workers, written, level,
                       [note] if note else [])  # fmt: skip


def _failed(failures: list[str], kept: str) -> errors.ProcessingError:
    return errors.ProcessingError(f"{len(failures)} piece(s) failed ({kept}): {'; '.join(failures[:3])}")


# -- one file per chapter ---------------------------------------------------------------------------


def _into_folder(
    guard: OutputFolder, chapters: list[Chapter], plan: list[list[Piece]], hashes: list[str], suffix: str,
    opts: SynthOptions, info: VoiceInfo,
) -> SynthResult:  # fmt: skip
    folder = guard.folder
    sweep_temp_files(folder)  # chapter files a killed run was writing
    names = [chapter_file_name(c, chapter.title, suffix, len(chapters)) for c, chapter in enumerate(chapters)]
    parts_dir = guard.state / "parts"  # emptied by the guard unless an earlier run is resumed
    parts_dir.mkdir(parents=True, exist_ok=True)
    tidy_parts(parts_dir, hashes)
    previous, kept_level = read_index(folder, opts.target_lufs, opts.peak_ceiling_db) if guard.resumed else ({}, None)
    files = [
        _kept(previous.get(c), folder, c, chapter.title, names[c], hashes[c]) for c, chapter in enumerate(chapters)
    ]
    parts = finished_parts(parts_dir, hashes, [f is not None for f in files]) if opts.resume else {}
    skip = {c for c in range(len(chapters)) if files[c] is not None or c in parts}
    guard.own(["chapters.json"])
    failures: list[str] = []
    count = _speak_parts(info, plan, hashes, opts, parts_dir, skip, parts, failures)
    level = _write_chapters(guard, names, chapters, hashes, parts, files, opts, info, kept_level)
    written = [f for f in files if f is not None]
    # Files of an earlier run that this text no longer has (or that failed now) go: the folder holds this text.
    guard.prune(["chapters.json", *(f.file for f in written), *(Path(f.file).with_suffix(".srt").name
                                                                for f in written if opts.srt)])  # fmt: skip
    if failures:
        raise _failed(failures, f"chapters kept: {len(written)}/{len(chapters)}; rerun with --resume")
    guard.clear_state()  # every chapter is written: no part is needed any more
    return _result(folder, info, files, count, opts, level)


def _kept(
    old: dict[str, Any] | None, folder: Path, index: int, title: str, name: str, chapter_hash: str
) -> ChapterFile | None:
    """A chapter file an earlier run wrote for exactly this chapter (its index entry ``old``), or None."""
    if old is None or old.get("hash") != chapter_hash or old.get("file") != name or not (folder / name).exists():
        return None
    cues = [Cue(**cue) for cue in old.get("cues", [])]
    return ChapterFile(index, title, name, 0.0, float(old["duration"]), chapter_hash, cues, True)


def _write_chapters(
    guard: OutputFolder, names: list[str], chapters: list[Chapter], hashes: list[str], parts: Parts,
    files: list[ChapterFile | None], opts: SynthOptions, info: VoiceInfo, kept_level: Loudness | None,
) -> Loudness:  # fmt: skip
    # One gain for the whole book, so chapters keep the voice's even level relative to each other (a
    # gain per chapter would differ wherever the peak ceiling binds). Chapters kept from an earlier
    # run were written with the gain recorded then: new ones get the same.
    order = sorted(parts)
    if kept_level is not None and any(f is not None for f in files):
        level = kept_level
    else:
        level = level_for([(parts[c][0], 0.0) for c in order], info.sample_rate, opts.target_lufs,
                          opts.peak_ceiling_db)  # fmt: skip
    for c in order:
        path, duration, cues = parts[c]
        name = names[c]
        guard.own([name, *([Path(name).with_suffix(".srt").name] if opts.srt else [])])
        write_parts([(path, 0.0)], guard.folder / name, info.sample_rate, level.gain_db)
        if opts.srt:
            write_srt(guard.folder / name, cues)
        files[c] = ChapterFile(c, chapters[c].title, name, 0.0, duration, hashes[c], cues)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        # After every chapter: a crash keeps what is done.
        write_index(guard.folder, files, info.name, info.sample_rate, level)
    write_index(guard.folder, files, info.name, info.sample_rate, level)
    return level


# -- one file -----------------------------------------------------------------------------------------


def _into_file(
    output: Path, chapters: list[Chapter], plan: list[list[Piece]], hashes: list[str], opts: SynthOptions,
    info: VoiceInfo,
) -> SynthResult:  # fmt: skip
    if opts.srt:
        sweep_temp_files(output.parent, output.with_suffix(".srt"))
    parts_dir = output.with_name(f".{output.name}.parts")
    if not opts.resume:
        shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True, exist_ok=True)
    parts: Parts = {}
    done = False
    try:
        tidy_parts(parts_dir, hashes)
        parts = finished_parts(parts_dir, hashes, [False] * len(chapters)) if opts.resume else {}
        failures: list[str] = []
        count = _speak_parts(info, plan, hashes, opts, parts_dir, set(parts), parts, failures)
        if failures:
            kept = f"{len(parts)}/{len(chapters)} chapter(s) finished, kept in {parts_dir} for --resume"
            raise _failed(failures, kept if parts else "nothing written")
        files: list[ChapterFile | None] = [None] * len(chapters)
        level = _write_single(output, chapters, hashes, parts, files, opts, info)
        done = True
    finally:
        # Parts are worth keeping only when a --resume can use them: finished chapters of a failed run.
        if done or not parts:
            shutil.rmtree(parts_dir, ignore_errors=True)
    return _result(output, info, files, count, opts, level)


def _write_single(
    output: Path, chapters: list[Chapter], hashes: list[str], parts: Parts, files: list[ChapterFile | None],
    opts: SynthOptions, info: VoiceInfo,
) -> Loudness:  # fmt: skip
    order = sorted(parts)
    pauses = [opts.chapter_silence if i < len(order) - 1 else 0.0 for i in range(len(order))]
    pieces_ = [(parts[c][0], p) for c, p in zip(order, pauses, strict=True)]
    level = level_for(pieces_, info.sample_rate, opts.target_lufs, opts.peak_ceiling_db)
    write_parts(pieces_, output, info.sample_rate, level.gain_db)
    start = 0.0
    all_cues: list[Cue] = []
    for c, pause in zip(order, pauses, strict=True):
        _, duration, cues = parts[c]
        files[c] = ChapterFile(c, chapters[c].title, output.name, start, duration, hashes[c], cues)
        all_cues += [Cue(start + cue.start, start + cue.end, cue.text) for cue in cues]
        start += duration + pause
    if opts.srt:
        write_srt(output, all_cues)
    return level
