"""A :class:`Book` into its output: one file, or one file per chapter plus ``chapters.json``.

Every chapter is spoken into its part first (synth/parts.py); then one gain, for the whole book, brings
the parts to the loudness target and they are copied into the output. Chapters keep the voice's even
level relative to each other (a gain per chapter would differ wherever the peak ceiling binds).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from voxmill import errors
from voxmill.engine.outputs import OutputFolder, sweep_temp_files
from voxmill.synth.book import Book
from voxmill.synth.notes import Loudness, loudness_note
from voxmill.synth.output import ChapterFile, Cue, LevelSoFar, level_for, write_index, write_parts, write_srt
from voxmill.synth.parts import JOURNAL, BookJournal, PartStore
from voxmill.synth.result import SynthResult
from voxmill.synth.speak import Speaker

__all__ = ["into_file", "into_folder"]


def _failed(speaker: Speaker, kept: str) -> errors.ProcessingError:
    failures = speaker.failures
    return errors.ProcessingError(f"{len(failures)} piece(s) failed ({kept}): {'; '.join(failures[:3])}")


def _result(
    book: Book, output: Path, files: list[ChapterFile | None], speaker: Speaker, level: Loudness
) -> SynthResult:
    written = [f for f in files if f is not None]
    note = loudness_note(level)
    return SynthResult(output, book.voice.name, sum(f.duration for f in written), 0.0, speaker.spoken, speaker.plan,
                       written, level, [note] if note else [])  # fmt: skip


# -- one file per chapter ---------------------------------------------------------------------------


class _Folder:
    """One run into a chapters folder: what an earlier run left that is still good, then the rest."""

    def __init__(self, book: Book, guard: OutputFolder, journal: BookJournal) -> None:
        self.book = book
        self.guard = guard
        self.journal = journal
        self.store = PartStore(guard.state / "parts", journal, book)  # emptied by the guard unless resumed
        self.files: list[ChapterFile | None] = [None] * len(book)
        self.kept_level: Loudness | None = None

    def resume(self) -> None:
        """Chapter files an earlier run wrote for exactly these chapters, then the parts it finished."""
        for c in range(len(self.book)):
            found = self.journal.chapter_file(self.book.key(c), self.guard.folder, self.book, c)
            if found is not None:
                self.files[c] = found[0]
                self.kept_level = self.kept_level or found[1]
        self.store.resume(c for c in range(len(self.book)) if self.files[c] is None)

    def todo(self) -> set[int]:
        """The chapters to skip: written, or with a finished part."""
        return {c for c in range(len(self.book)) if self.files[c] is not None or c in self.store.finished}

    def write(self, so_far: LevelSoFar | None) -> Loudness:
        """Each finished part into its chapter file, with the gain of the chapters kept from an earlier
        run (they were written with it) or else the one that brings all of them to the target
        (``so_far``: their level measured as they were spoken)."""
        book, folder = self.book, self.guard.folder
        opts = book.opts
        parts = self.store.finished
        order = sorted(parts)
        measured = so_far.of(order) if so_far is not None else None
        level = self.kept_level or level_for([(parts[c].path, 0.0) for c in order], book.sample_rate,
                                             opts.target_lufs, opts.peak_ceiling_db, measured)  # fmt: skip
        for c in order:
            part, name = parts[c], book.file_name(c)
            self.guard.own([name, *([Path(name).with_suffix(".srt").name] if opts.srt else [])])
            write_parts([(part.path, 0.0)], folder / name, book.sample_rate, level.gain_db)
            if opts.srt:
                write_srt(folder / name, part.cues)
            written = ChapterFile(c, book.chapters[c].title, name, 0.0, part.seconds, book.hashes[c], part.cues)
            self.journal.record_file(book.key(c), written, level)
            self.files[c] = written
            self.store.discard(c)
            # After every chapter: a crash keeps what is done.
            write_index(folder, self.files, book.voice.name, book.sample_rate, level)
        write_index(folder, self.files, book.voice.name, book.sample_rate, level)
        return level


def into_folder(book: Book, guard: OutputFolder, speaker: Speaker) -> SynthResult:
    """One file per chapter in ``guard.folder`` plus ``chapters.json``; with a resumed folder, the
    chapters already written stay as they are. ProcessingError after writing the chapters that were
    spoken whole, when a piece failed."""
    sweep_temp_files(guard.folder)  # chapter files a killed run was writing
    with BookJournal(guard.state / JOURNAL) as journal:
        run = _Folder(book, guard, journal)
        if guard.resumed:
            run.resume()
        guard.own(["chapters.json"])
        # Chapter files kept from an earlier run bring their gain; else the parts are measured as spoken.
        measuring = book.opts.target_lufs is not None and run.kept_level is None
        so_far = LevelSoFar(book.sample_rate, 0.0) if measuring else None
        run.store.speak(speaker, run.todo(), so_far)
        level = run.write(so_far)
    written = [f for f in run.files if f is not None]
    # Files of an earlier run that this text no longer has (or that failed now) go: the folder holds this text.
    guard.prune(["chapters.json", *(f.file for f in written),
                 *(Path(f.file).with_suffix(".srt").name for f in written if book.opts.srt)])  # fmt: skip
    if speaker.failures:
        raise _failed(speaker, f"chapters kept: {len(written)}/{len(book)}; rerun with --resume")
    shutil.rmtree(run.store.folder, ignore_errors=True)  # every chapter is written; the journal stays for --resume
    return _result(book, guard.folder, run.files, speaker, level)


# -- one file -----------------------------------------------------------------------------------------


def into_file(book: Book, output: Path, speaker: Speaker) -> SynthResult:
    """The whole book in ``output``, ``chapter_silence`` between chapters. Finished chapters of a run
    that failed are kept beside it (``.OUTPUT.parts``) for ``--resume``; nothing else is ever left."""
    opts = book.opts
    if opts.srt:
        sweep_temp_files(output.parent, output.with_suffix(".srt"))
    state = output.with_name(f".{output.name}.parts")
    if state.is_symlink() or (state.exists() and not state.is_dir()):
        state.unlink()  # followed, the parts' clean-up would remove files of some other folder
    if not opts.resume:
        shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True, exist_ok=True)
    store: PartStore | None = None
    done = False
    try:
        with BookJournal(state / JOURNAL) as journal:
            store = PartStore(state, journal, book)
            if opts.resume:
                store.resume(range(len(book)))
            so_far = LevelSoFar(book.sample_rate, opts.chapter_silence) if opts.target_lufs is not None else None
            store.speak(speaker, set(store.finished), so_far)
        if speaker.failures:
            kept = f"{len(store.finished)}/{len(book)} chapter(s) finished, kept in {state} for --resume"
            raise _failed(speaker, kept if store.finished else "nothing written")
        files, level = _write_single(book, output, store, so_far)
        done = True
    finally:
        # Parts are worth keeping only when a --resume can use them: finished chapters of a failed run.
        if done or store is None or not store.finished:
            shutil.rmtree(state, ignore_errors=True)
    return _result(book, output, files, speaker, level)


def _write_single(
    book: Book, output: Path, store: PartStore, so_far: LevelSoFar | None
) -> tuple[list[ChapterFile | None], Loudness]:
    opts, parts = book.opts, store.finished
    order = sorted(parts)
    pauses = [opts.chapter_silence if i < len(order) - 1 else 0.0 for i in range(len(order))]
    pieces = [(parts[c].path, p) for c, p in zip(order, pauses, strict=True)]
    measured = so_far.of(order) if so_far is not None else None
    level = level_for(pieces, book.sample_rate, opts.target_lufs, opts.peak_ceiling_db, measured)
    write_parts(pieces, output, book.sample_rate, level.gain_db)
    files: list[ChapterFile | None] = [None] * len(book)
    start = 0.0
    all_cues: list[Cue] = []
    for c, pause in zip(order, pauses, strict=True):
        part = parts[c]
        files[c] = ChapterFile(c, book.chapters[c].title, output.name, start, part.seconds, book.hashes[c], part.cues,
                               c in store.resumed)  # fmt: skip
        all_cues += [Cue(start + cue.start, start + cue.end, cue.text) for cue in part.cues]
        start += part.seconds + pause
    if opts.srt:
        write_srt(output, all_cues)
    return files, level
