"""Where synthesized speech goes: a raw part per chapter, then one gain to the loudness target, SRT, chapters.json.

Each chapter is first written at the voice's own level to a float WAV part (streamed, so memory stays
bounded; it appears atomically once the chapter is complete, and synth/parts.py journals it). Then
the parts are measured (BS.1770) and copied with one gain into the final file(s): the level is even
across the whole output and nothing is peak-normalized per sentence.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxmill.audio import blocks, open_writer
from voxmill.audio.io import atomic_path
from voxmill.audio.loudness import LoudnessMeter, gain_to
from voxmill.corpus.names import is_word_character
from voxmill.synth.notes import Loudness

__all__ = [
    "ChapterFile",
    "Cue",
    "LevelSoFar",
    "PartWriter",
    "chapter_file_name",
    "level_for",
    "measure",
    "slug",
    "srt_text",
    "write_index",
    "write_json",
    "write_parts",
    "write_srt",
]

BLOCK_SECONDS = 30.0


@dataclass(frozen=True)
class Cue:
    """One sentence: its text and where it is spoken, in seconds from the start of its file."""

    start: float
    end: float
    text: str


@dataclass
class ChapterFile:
    """A chapter's audio as written: ``file`` is its own file (``--chapters``) or the single output."""

    index: int
    title: str
    file: str
    start: float
    duration: float
    hash: str
    cues: list[Cue] = field(default_factory=list)
    resumed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("cues", "resumed")}


def write_json(path: Path, data: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def slug(title: str, limit: int = 40) -> str:
    """A file-name-safe form of a heading, keeping the letters of every script:
    ``Chapter 1: The Storm`` -> ``chapter-1-the-storm``, ``Глава 2. Буря`` -> ``глава-2-буря``."""
    kept = "".join(ch if is_word_character(ch) else "-" for ch in unicodedata.normalize("NFC", title).lower())
    return re.sub(r"-+", "-", kept).strip("-")[:limit].strip("-")


def chapter_file_name(index: int, title: str, suffix: str, count: int = 0) -> str:
    """``03-chapter-2-the-storm.wav``: numbered (as wide as ``count`` chapters need) so a folder listing
    plays in order; the number alone keeps names apart, whatever the titles."""
    number = f"{index + 1:0{max(2, len(str(count)))}d}"
    return f"{number}-{slug(title) or ('opening' if not title else 'chapter')}{suffix}"


def _timestamp(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def srt_text(cues: list[Cue]) -> str:
    return "".join(
        f"{n}\n{_timestamp(c.start)} --> {_timestamp(c.end)}\n{c.text}\n\n" for n, c in enumerate(cues, start=1)
    )


def write_srt(audio: Path, cues: list[Cue]) -> None:
    """Subtitles beside ``audio`` (same name, .srt), atomically."""
    with atomic_path(audio.with_suffix(".srt")) as tmp:
        tmp.write_text(srt_text(cues), encoding="utf-8")


class PartWriter:
    """Streams one chapter's speech and pauses to ``path`` (float WAV; atomic: it appears on :meth:`commit`)
    and keeps the chapter's sentence cues."""

    def __init__(self, path: Path, sample_rate: int, level: LevelSoFar | None = None) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.level = level  # fed every sample written, when given
        self.frames = 0
        self.cues: list[Cue] = []
        self._end = 0
        self._open: tuple[int, int, list[str]] | None = None  # sentence number, start frame, texts
        self._writer = open_writer(self.path, sample_rate, 1, "FLOAT")
        self._file = self._writer.__enter__()

    def speech(self, sentence: int, text: str, samples: np.ndarray) -> None:
        if self._open is not None and self._open[0] != sentence:
            self._close_cue()
        if self._open is None:
            self._open = (sentence, self.frames, [])
        self._open[2].append(text)
        self._file.write(samples)
        if self.level is not None:
            self.level.add(samples)
        self.frames += samples.shape[0]
        self._end = self.frames

    def pause(self, seconds: float) -> None:
        frames = round(seconds * self.sample_rate)
        if frames > 0:
            silence = np.zeros(frames, np.float32)
            self._file.write(silence)
            if self.level is not None:
                self.level.add(silence)
            self.frames += frames

    def _close_cue(self) -> None:
        if self._open is not None:
            _, start, texts = self._open
            self.cues.append(Cue(start / self.sample_rate, self._end / self.sample_rate, " ".join(texts)))
            self._open = None

    def commit(self) -> tuple[int, list[Cue]]:
        """Close the part (it appears under its name now): its frames and cues."""
        self._close_cue()
        self._writer.__exit__(None, None, None)
        return self.frames, self.cues

    def abort(self) -> None:
        self._writer.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_index(folder: Path, files: list[ChapterFile | None], voice: str, sample_rate: int, level: Loudness) -> None:
    """``chapters.json``: each written chapter (file, start in the book, duration, cues) and the level."""
    start = 0.0
    entries = []
    for f in files:
        if f is None:
            continue
        f.start = start
        start += f.duration
        entries.append(f.to_dict() | {"cues": [asdict(c) for c in f.cues]})
    index = {"voice": voice, "sample_rate": sample_rate, "gain_db": round(level.gain_db, 3),
             "loudness": level.to_dict(), "chapters": entries}  # fmt: skip
    write_json(folder / "chapters.json", index)


def _part_blocks(parts: list[tuple[Path, float]], sr: int) -> Iterator[np.ndarray]:
    """The parts in order, each followed by its pause, as blocks of float samples."""
    for path, pause in parts:
        for block in blocks(path, seconds=BLOCK_SECONDS, mono=True):
            yield block.samples
        if pause > 0:
            yield np.zeros(round(pause * sr), np.float32)


def measure(parts: list[tuple[Path, float]], sample_rate: int) -> tuple[float, float]:
    """(integrated LUFS, peak) of ``parts`` played in order, read block-wise."""
    meter = LoudnessMeter(sample_rate)
    for block in _part_blocks(parts, sample_rate):
        meter.add(block)
    return meter.lufs, meter.peak


class LevelSoFar:
    """The loudness and peak of chapter parts played in order with ``gap`` seconds of silence between
    them, fed while they are written: what :func:`measure` gives of the same parts, without reading them
    back at the end (0.12 s of a 10-s run, on one core while the other idles).

    The meter gets the very samples the parts hold, in the same order, and BS.1770 gating does not
    depend on how they are cut into blocks, so the figures are the same values: a run that takes some
    parts from an earlier run's files (``add_file``) gets the gain an unbroken run gets."""

    def __init__(self, sample_rate: int, gap: float) -> None:
        self.sample_rate = sample_rate
        self.gap = gap
        self.chapters: list[int] = []  # fed, in order
        self._meter = LoudnessMeter(sample_rate)

    def start(self, chapter: int) -> None:
        """The next part begins (the gap before it, when one came before)."""
        if self.chapters and self.gap > 0:
            self._meter.add(np.zeros(round(self.gap * self.sample_rate), np.float32))
        self.chapters.append(chapter)

    def add(self, samples: np.ndarray) -> None:
        self._meter.add(samples)

    def add_file(self, chapter: int, path: Path) -> None:
        """A part already on disk (an earlier run's), whole."""
        self.start(chapter)
        for block in blocks(path, seconds=BLOCK_SECONDS, mono=True):
            self._meter.add(block.samples)

    def of(self, chapters: list[int]) -> tuple[float, float] | None:
        """(LUFS, peak) when exactly ``chapters`` were fed, in that order; None otherwise (a chapter that
        failed was fed, and is not in the output)."""
        return (self._meter.lufs, self._meter.peak) if chapters == self.chapters else None


def level_for(
    parts: list[tuple[Path, float]],
    sample_rate: int,
    target_lufs: float | None,
    ceiling_db: float,
    measured: tuple[float, float] | None = None,
) -> Loudness:
    """The one gain that brings ``parts`` together to ``target_lufs`` (peak ceiling kept), and the level
    it reaches; no gain (and no measuring) for None. ``measured``: their (LUFS, peak), when known
    (:class:`LevelSoFar`), else they are read and measured here."""
    if target_lufs is None:
        return Loudness(None, None, 0.0, None, False, ceiling_db)
    lufs, peak = measured or measure(parts, sample_rate)
    gain_db, limited = gain_to(lufs, peak, target_lufs, ceiling_db)
    reached = lufs + gain_db if math.isfinite(lufs) else None
    peak_db = 20 * math.log10(peak) + gain_db if peak > 0 else None
    return Loudness(target_lufs, reached, gain_db, peak_db, limited, ceiling_db)


def write_parts(parts: list[tuple[Path, float]], output: Path, sample_rate: int, gain_db: float) -> None:
    """``parts`` (path, pause after) into ``output`` (atomic, format by suffix) with ``gain_db`` applied."""
    gain = np.float32(10 ** (gain_db / 20))
    with open_writer(output, sample_rate, 1) as out:
        # libsndfile's FLAC encoder converts floats its own way (to nearest at x 2^15): it keeps them.
        pcm16 = out.subtype == "PCM_16" and out.format in ("WAV", "AIFF")
        for block in _part_blocks(parts, sample_rate):  # each a fresh array: scaled in place
            if pcm16:
                out.write(_pcm16_in_place(block, gain))
            else:
                block *= gain
                out.write(block)


def _pcm16_in_place(samples: np.ndarray, gain: np.float32) -> np.ndarray:
    """``samples * gain`` as libsndfile writes floats to 16-bit PCM in WAV and AIFF (``samples`` is
    overwritten), the same values in a third of the time: its conversion is a scalar loop, 0.07 s of a
    10-s run's 0.1-s final write, alone on one core. It rounds to 32 bits (x 2^31, to nearest, clipped)
    and keeps the top 16."""
    samples *= gain * np.float32(2.0**31)  # x gain, then x a power of two (exact): as libsndfile scales
    np.rint(samples, out=samples)  # no NaN here: reading a part refuses one (audio.blocks)
    # 2^31 - 128: the largest float32 under 2^31 (the top of int32 is not one).
    np.clip(samples, -(2.0**31), 2.0**31 - 128, out=samples)
    whole = samples.astype(np.int32)
    whole >>= 16
    return whole.astype(np.int16)
