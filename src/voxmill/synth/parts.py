"""What a synth run has finished, and the chapter parts it speaks into: the resume state of a :class:`Book`.

Each chapter is first spoken at the voice's own level into a float WAV part (streamed, so memory stays
bounded). The engine's :class:`~voxmill.engine.Journal` is the one record of what is finished: a part
is recorded (its length and sentence cues) once its file is complete, and with ``--chapters`` each
chapter file once it is written (with the gain it got). ``--resume`` trusts the journal, and checks the
file it names is still there: a record without its file, or a file without its record (a run killed
between the two), is spoken again.
"""

from __future__ import annotations

import math
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from voxmill.engine import Journal, Ok, Outcome
from voxmill.synth.book import Book
from voxmill.synth.notes import Loudness
from voxmill.synth.output import ChapterFile, Cue, LevelSoFar, PartWriter
from voxmill.synth.speak import Speaker

__all__ = ["BookJournal", "Part", "PartStore"]

JOURNAL = "journal.db"


@dataclass(frozen=True)
class Part:
    """A chapter spoken: its float WAV, seconds (pauses included) and sentence cues."""

    path: Path
    seconds: float
    cues: list[Cue]


def _cues(data: Any) -> list[Cue]:
    """Cues back from a journal record; ValueError/TypeError for anything that is not a list of them."""
    cues = [Cue(float(start), float(end), text) for start, end, text in data]
    if not all(isinstance(c.text, str) and math.isfinite(c.start) and math.isfinite(c.end) for c in cues):
        raise ValueError("not a cue")
    return cues


def _regular(path: Path) -> bool:
    """A regular file (never a FIFO, a folder or a symlink someone planted in place of a part)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


class BookJournal:
    """The journal of one output: ``part:KEY`` for finished parts, ``file:KEY`` for written chapter files
    (``KEY``: :meth:`Book.key`, the chapter's place and hash). Records are plain JSON, checked on reading."""

    def __init__(self, path: Path) -> None:
        self._journal = Journal(path)

    def __enter__(self) -> BookJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self._journal.close()

    def _record(self, key: str, value: dict[str, Any]) -> None:
        self._journal.record(Outcome(0, key, None, Ok(value)))

    def _lookup(self, key: str) -> Any:
        found = self._journal.lookup(key)
        return found[0].value if found is not None and isinstance(found[0], Ok) else None

    def record_part(self, key: str, frames: int, cues: list[Cue]) -> None:
        self._record(f"part:{key}", {"frames": frames, "cues": [[c.start, c.end, c.text] for c in cues]})

    def part(self, key: str, path: Path, sample_rate: int) -> Part | None:
        """The finished part ``key`` at ``path``, or None (not recorded, or its file is not the one recorded)."""
        data = self._lookup(f"part:{key}")
        if not isinstance(data, dict) or not _regular(path):
            return None
        try:
            frames, cues = data["frames"], _cues(data["cues"])
            info = sf.info(str(path))
        except (KeyError, ValueError, TypeError, RuntimeError, OSError):
            return None
        if not isinstance(frames, int) or info.frames != frames or info.samplerate != sample_rate:
            return None
        return Part(path, frames / sample_rate, cues)

    def record_file(self, key: str, chapter: ChapterFile, level: Loudness) -> None:
        self._record(f"file:{key}", {"file": chapter.file, "duration": chapter.duration,
                                     "cues": [[c.start, c.end, c.text] for c in chapter.cues],
                                     "level": level.to_record()})  # fmt: skip

    def chapter_file(self, key: str, folder: Path, book: Book, index: int) -> tuple[ChapterFile, Loudness] | None:
        """The chapter file an earlier run wrote for exactly this chapter, and the level it got; or None."""
        data = self._lookup(f"file:{key}")
        name = book.file_name(index)
        if not isinstance(data, dict) or data.get("file") != name or not _regular(folder / name):
            return None
        try:
            duration, cues = float(data["duration"]), _cues(data["cues"])
            level = Loudness.from_record(data["level"], book.opts.target_lufs, book.opts.peak_ceiling_db)
        except (KeyError, ValueError, TypeError):
            return None
        if not (math.isfinite(duration) and duration >= 0):  # chapters.json cannot hold NaN or inf
            return None
        title = book.chapters[index].title
        return ChapterFile(index, title, name, 0.0, duration, book.hashes[index], cues, True), level


class PartStore:
    """The parts of a book in ``folder``; ``finished``: the parts complete so far, by chapter index;
    ``resumed``: the chapters among them an earlier run finished."""

    def __init__(self, folder: Path, journal: BookJournal, book: Book) -> None:
        self.folder = folder
        self.finished: dict[int, Part] = {}
        self.resumed: set[int] = set()
        self._journal = journal
        self._book = book
        if os.path.lexists(folder) and not folder.is_dir():  # a file or FIFO planted in the state folder
            folder.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        # Parts of chapters the text no longer has (or had with other words), a killed run's temp files,
        # and anything planted under a part's name that is not a plain file (a folder would make every
        # rerun fail writing that part) go. Symlinks are removed, never followed.
        wanted = {self.path(c).name for c in range(len(book))}
        for entry in os.scandir(folder):
            if entry.name.startswith(JOURNAL) or (entry.name in wanted and entry.is_file(follow_symlinks=False)):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink(missing_ok=True)

    def path(self, index: int) -> Path:
        return self.folder / f"{self._book.key(index)}.wav"

    def resume(self, chapters: Iterable[int]) -> None:
        """Take the parts an earlier run finished for ``chapters``."""
        for c in chapters:
            part = self._journal.part(self._book.key(c), self.path(c), self._book.sample_rate)
            if part is not None:
                self.finished[c] = part
                self.resumed.add(c)

    def speak(self, speaker: Speaker, skip: set[int], level: LevelSoFar | None = None) -> None:
        """Speak every chapter not in ``skip`` into its part. A chapter with a failed piece is not kept:
        a chapter with a hole is never final, the next ``--resume`` speaks it again. ``level``: fed every
        part in chapter order as it is written, the finished parts of ``skip`` from their files."""
        writer: PartWriter | None = None
        current, failed = -1, False
        try:
            for chunk in speaker.chunks(self._book.pieces, skip):
                if writer is None or chunk.chapter != current:
                    if writer is not None:
                        self._close(writer, current, failed)
                    current, failed = chunk.chapter, False
                    if level is not None:
                        self._feed_finished(level, current)
                        level.start(current)
                    writer = PartWriter(self.path(current), self._book.sample_rate, level)
                failed = failed or chunk.samples.size == 0
                writer.speech(chunk.sentence, chunk.text, chunk.samples)
                writer.pause(chunk.pause)
            if writer is not None:
                self._close(writer, current, failed)
                writer = None
            if level is not None:
                self._feed_finished(level, len(self._book))
        finally:
            if writer is not None:
                writer.abort()

    def _feed_finished(self, level: LevelSoFar, before: int) -> None:
        """The finished parts before chapter ``before`` that ``level`` has not had (an earlier run's)."""
        for c in sorted(self.finished):
            if c < before and (not level.chapters or c > level.chapters[-1]):
                level.add_file(c, self.finished[c].path)

    def _close(self, writer: PartWriter, chapter: int, failed: bool) -> None:
        if failed:
            writer.abort()
            return
        frames, cues = writer.commit()
        self._journal.record_part(self._book.key(chapter), frames, cues)  # after the file: a record means done
        self.finished[chapter] = Part(writer.path, frames / self._book.sample_rate, cues)

    def discard(self, chapter: int) -> None:
        """The part of a chapter written into its file: no longer needed."""
        part = self.finished.pop(chapter, None)
        if part is not None:
            part.path.unlink(missing_ok=True)
