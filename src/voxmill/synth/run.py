"""``synthesize`` and ``synthesize_file``: long texts spoken by a Piper voice in parallel, in order, resumable.

Data flow: text -> chapters -> paragraphs -> sentences -> pieces (text/split) -> engine workers,
each holding the voice from its model manager (one onnxruntime session sized to the worker's thread
budget) -> speech in order -> a raw part per chapter -> one gain to the loudness target -> file(s).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from voxmill import errors
from voxmill.engine import Ok, Pool
from voxmill.engine import plan as thread_plan
from voxmill.models.registry import Registry
from voxmill.synth.output import (
    ChapterFile,
    Cue,
    PartWriter,
    chapter_file_name,
    finished_part,
    gain_for,
    write_json,
    write_parts,
    write_srt,
)
from voxmill.synth.task import SpeakItem, SpeakTask, Speech
from voxmill.synth.voice import VoiceInfo, resolve_voice
from voxmill.text.split import Chapter, Piece, parse_document, pieces

__all__ = ["AudioChunk", "SynthOptions", "SynthResult", "synthesize", "synthesize_file"]

WRITABLE = (".wav", ".flac", ".ogg", ".mp3")
BACKENDS = ("process", "thread", "ray")


@dataclass
class SynthOptions:
    """How text is spoken and written; see ``voxmill synth --help``. Scales None: the voice's own defaults."""

    speaker: int | str | None = None
    """Speaker id or name, for multi-speaker voices."""
    length_scale: float | None = None
    noise_scale: float | None = None
    noise_w: float | None = None
    sentence_silence: float = 0.2
    """Seconds of silence after each sentence (half of it where an over-long sentence was cut)."""
    paragraph_silence: float = 0.6
    chapter_silence: float = 1.5
    """Between chapters in a single output file."""
    max_chars: int = 300
    """Sentences longer than this are cut at clause boundaries."""
    markdown: bool | None = None
    """Parse the text as markdown; None: by the input file's suffix (.md)."""
    target_lufs: float | None = -23.0
    """Integrated loudness of the whole output (EBU R 128), one gain for all of it; None keeps the voice's level.

    Lowered where the peak would pass ``peak_ceiling_db``: Piper voices peak ~22 dB above their loudness."""
    peak_ceiling_db: float = -1.0
    chapters: bool = False
    """One file per chapter in the output folder, plus chapters.json."""
    chapter_format: str = ".wav"
    """The chapter files' format with ``chapters``."""
    srt: bool = False
    resume: bool = False
    """Chapters whose text, voice and parameters are unchanged are not synthesized again."""
    workers: int | str = "auto"
    backend: str = "thread"
    ray_address: str | None = None  # backend "ray": the cluster to join; None starts a local Ray
    """thread: one process, the voice loaded once and shared by the workers (onnxruntime runs without
    the GIL); process: a voice per worker process."""
    progress: bool | None = None

    def validate(self) -> None:
        for name in ("sentence_silence", "paragraph_silence", "chapter_silence"):
            if getattr(self, name) < 0:
                raise errors.ConfigError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be >= 0")
        for name in ("length_scale", "noise_scale", "noise_w"):
            value = getattr(self, name)
            if value is not None and (value < 0 or (name == "length_scale" and value == 0)):
                raise errors.ConfigError(f"--{name.replace('_', '-')} {value}: must be > 0")
        if self.max_chars < 20:
            raise errors.ConfigError(f"max_chars {self.max_chars}: must be >= 20")
        if self.backend not in BACKENDS:
            raise errors.ConfigError(f"--backend {self.backend}: use one of {', '.join(BACKENDS)}")

    def pause(self, kind: str) -> float:
        return {"clause": self.sentence_silence / 2, "sentence": self.sentence_silence,
                "paragraph": self.paragraph_silence}.get(kind, 0.0)  # fmt: skip


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


@dataclass
class SynthResult:
    """What one ``synthesize_file`` run wrote."""

    output: Path
    voice: str
    seconds: float
    wall_seconds: float
    pieces: int
    workers: int
    chapters: list[ChapterFile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "voice": self.voice,
            "seconds": round(self.seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "x_realtime": round(self.seconds / self.wall_seconds, 2) if self.wall_seconds else None,
            "pieces": self.pieces,
            "workers": self.workers,
            "chapters": [c.to_dict() | {"resumed": c.resumed} for c in self.chapters],
        }


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
                         opts.pause(piece.pause))  # fmt: skip


def synthesize(
    text: str, voice: str | Path = "piper:en_US-joe-medium", opts: SynthOptions | None = None
) -> Iterator[AudioChunk]:
    """Speak ``text`` (plain or markdown per ``opts.markdown``): one AudioChunk per piece, in order.

    Streams: pieces are synthesized in parallel ahead of the consumer, within the engine's window.
    The samples are at the voice's own level (no per-sentence normalization); ``synthesize_file``
    applies one gain to the whole output. Raises ConfigError for empty text or an unknown voice, and
    ProcessingError after the last chunk if any piece failed (its chunk has no samples).
    """
    opts = opts or SynthOptions()
    opts.validate()
    info = resolve_voice(voice)
    chapters = parse_document(text, markdown=bool(opts.markdown))
    plan = _plan(chapters, info, opts)
    if not any(plan):
        raise errors.ConfigError("no text to speak")
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
        "pieces": [(p.text, p.pause) for p in plan],
        "voice": [voice.name, voice.fingerprint],
        "options": {k: getattr(opts, k) for k in keys},
        "suffix": suffix,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _check_output(output: Path, opts: SynthOptions) -> str:
    """The output's audio suffix; ConfigError now (before any synthesis) if it cannot be written."""
    if opts.chapters:
        folder, suffix = output, opts.chapter_format.lower()
        if suffix not in WRITABLE:
            raise errors.ConfigError(f"chapter format {suffix}: use one of {', '.join(WRITABLE)}")
        if output.suffix.lower() in WRITABLE:
            raise errors.ConfigError(f"{output}: --chapters needs an output folder, not a file")
    else:
        folder, suffix = output.parent, output.suffix.lower()
        if suffix not in WRITABLE:
            raise errors.ConfigError(f"{output}: output format {suffix or '(none)'} not supported; use "
                                     f"{', '.join(WRITABLE)} or --chapters with a folder")  # fmt: skip
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".voxmill-probe-"):
            pass
    except OSError as exc:
        raise errors.ConfigError(f"{output}: cannot write there: {exc.strerror or exc}") from None
    return suffix


def _previous_index(folder: Path) -> tuple[dict[int, dict[str, Any]], float | None]:
    """What an earlier run's chapters.json recorded: its chapters by index, and the gain they got."""
    try:
        data = json.loads((folder / "chapters.json").read_text(encoding="utf-8"))
        return {int(c["index"]): c for c in data["chapters"]}, float(data["gain_db"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}, None


def synthesize_file(
    text: str, output: str | Path, voice: str | Path = "piper:en_US-joe-medium", opts: SynthOptions | None = None
) -> SynthResult:
    """Speak ``text`` into ``output``: one audio file (wav/flac/ogg/mp3 by suffix), or with
    ``opts.chapters`` (or when ``output`` is a folder) one file per chapter plus ``chapters.json``.
    With ``opts.srt`` subtitles go beside each audio file. Raises ConfigError (empty text, unknown voice, unwritable
    output) before anything is synthesized, ProcessingError when a piece failed (finished chapters
    are kept: ``resume`` picks up from there).
    """
    opts = opts or SynthOptions()
    opts.validate()
    output = Path(output)
    if not opts.chapters and (output.is_dir() or not output.suffix):
        opts = replace(opts, chapters=True)  # a folder to write into: one file per chapter
    info = resolve_voice(voice, Registry())
    chapters = parse_document(text, markdown=bool(opts.markdown))
    plan = _plan(chapters, info, opts)
    if not any(plan):
        raise errors.ConfigError("no text to speak")
    suffix = _check_output(output, opts)
    started = time.perf_counter()
    kept = [(c, p) for c, p in zip(chapters, plan, strict=True) if p]
    chapters, plan = [c for c, _ in kept], [p for _, p in kept]
    hashes = [_chapter_hash(c, p, info, opts, suffix) for c, p in zip(chapters, plan, strict=True)]
    parts_dir = output / ".parts" if opts.chapters else output.with_name(f".{output.name}.parts")
    if not opts.resume:
        shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir(parents=True, exist_ok=True)

    files: list[ChapterFile | None] = [None] * len(chapters)
    previous, kept_gain = _previous_index(output) if opts.chapters and opts.resume else ({}, None)
    for c, chapter in enumerate(chapters):
        name = chapter_file_name(c, chapter.title, suffix)
        old = previous.get(c)
        if old is not None and old.get("hash") == hashes[c] and (output / name).exists():
            cues = [Cue(**cue) for cue in old.get("cues", [])]
            files[c] = ChapterFile(c, chapter.title, name, 0.0, float(old["duration"]), hashes[c], cues, True)
    parts: dict[int, tuple[Path, float, list[Cue]]] = {}
    if opts.resume:
        for c in range(len(chapters)):
            found = finished_part(parts_dir, c, hashes[c]) if files[c] is None else None
            if found is not None:
                parts[c] = found
    skip = {c for c in range(len(chapters)) if files[c] is not None or c in parts}

    failures: list[str] = []
    failed_chapters: set[int] = set()
    writer: PartWriter | None = None
    current = -1
    count = 0
    try:
        for chunk in _speak(info, plan, opts, skip, failures):
            count += 1
            if writer is None or chunk.chapter != current:
                if writer is not None:
                    _close(writer, current, parts, failed_chapters)
                current = chunk.chapter
                writer = PartWriter(parts_dir, current, hashes[current], info.sample_rate)
            if chunk.samples.size == 0:
                failed_chapters.add(current)
            writer.speech(chunk.sentence, chunk.text, chunk.samples)
            writer.pause(chunk.pause)
        if writer is not None:
            _close(writer, current, parts, failed_chapters)
            writer = None
    finally:
        if writer is not None:
            writer.abort()

    if opts.chapters:
        _write_chapters(output, chapters, hashes, parts, files, suffix, opts, info, kept_gain)
    elif len(parts) == len(chapters):
        _write_single(output, chapters, hashes, parts, files, opts, info)
    written = [f for f in files if f is not None]
    if failures:
        raise errors.ProcessingError(
            f"{len(failures)} piece(s) failed (chapters kept: {len(written)}/{len(chapters)}; rerun with "
            f"--resume): {'; '.join(failures[:3])}"
        )
    if not opts.chapters or all(files):
        shutil.rmtree(parts_dir, ignore_errors=True)
    return SynthResult(
        output, info.name, sum(f.duration for f in written), time.perf_counter() - started, count,
        0 if not count else thread_plan(opts.workers, 1, items=count).workers, written,
    )  # fmt: skip


def _close(writer: PartWriter, chapter: int, parts: dict[int, tuple[Path, float, list[Cue]]], failed: set[int]) -> None:
    # A chapter with a hole is never final: the next --resume speaks it again.
    if chapter in failed:
        writer.abort()
    else:
        parts[chapter] = writer.commit()


def _write_chapters(
    folder: Path,
    chapters: list[Chapter],
    hashes: list[str],
    parts: dict[int, tuple[Path, float, list[Cue]]],
    files: list[ChapterFile | None],
    suffix: str,
    opts: SynthOptions,
    info: VoiceInfo,
    kept_gain: float | None,
) -> None:
    # One gain for the whole book, so chapters keep the voice's even level relative to each other (a
    # gain per chapter would differ wherever the peak ceiling binds). Chapters kept from an earlier
    # run were written with the gain recorded then: new ones get the same.
    order = sorted(parts)
    if kept_gain is not None and any(f is not None for f in files):
        gain_db = kept_gain
    else:
        gain_db = gain_for([(parts[c][0], 0.0) for c in order], info.sample_rate, opts.target_lufs,
                           opts.peak_ceiling_db)  # fmt: skip
    for c in order:
        path, duration, cues = parts[c]
        name = chapter_file_name(c, chapters[c].title, suffix)
        write_parts([(path, 0.0)], folder / name, info.sample_rate, gain_db)
        if opts.srt:
            write_srt(folder / name, cues)
        files[c] = ChapterFile(c, chapters[c].title, name, 0.0, duration, hashes[c], cues)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        _write_index(folder, files, info, gain_db)  # after every chapter: a crash keeps what is done
    _write_index(folder, files, info, gain_db)


def _write_index(folder: Path, files: list[ChapterFile | None], info: VoiceInfo, gain_db: float) -> None:
    start = 0.0
    entries = []
    for f in files:
        if f is None:
            continue
        f.start = start
        start += f.duration
        entries.append(f.to_dict() | {"cues": [asdict(c) for c in f.cues]})
    index = {"voice": info.name, "sample_rate": info.sample_rate, "gain_db": round(gain_db, 3), "chapters": entries}
    write_json(folder / "chapters.json", index)


def _write_single(
    output: Path,
    chapters: list[Chapter],
    hashes: list[str],
    parts: dict[int, tuple[Path, float, list[Cue]]],
    files: list[ChapterFile | None],
    opts: SynthOptions,
    info: VoiceInfo,
) -> None:
    order = sorted(parts)
    pauses = [opts.chapter_silence if i < len(order) - 1 else 0.0 for i in range(len(order))]
    pieces_ = [(parts[c][0], p) for c, p in zip(order, pauses, strict=True)]
    write_parts(pieces_, output, info.sample_rate,
                gain_for(pieces_, info.sample_rate, opts.target_lufs, opts.peak_ceiling_db))  # fmt: skip
    start = 0.0
    all_cues: list[Cue] = []
    for c, pause in zip(order, pauses, strict=True):
        _, duration, cues = parts[c]
        files[c] = ChapterFile(c, chapters[c].title, output.name, start, duration, hashes[c], cues)
        all_cues += [Cue(start + cue.start, start + cue.end, cue.text) for cue in cues]
        start += duration + pause
    if opts.srt:
        write_srt(output, all_cues)
