"""``voxmill.synth.run``: long texts spoken by a Piper voice in parallel, in order, resumable; and
``stream``, the same speech as chunks, as they are ready.

Data flow: text -> chapters -> paragraphs -> sentences -> pieces (text/split; a :class:`Book`) ->
engine workers, each holding the voice leased from its model manager (one onnxruntime session sized
to the worker's thread budget; each piece's phonemes cut to a bounded length, synth/task.py) ->
speech in order -> a raw part per chapter, journaled (synth/parts.py) -> one gain to the loudness
target -> file(s) (synth/assemble.py).

Where it writes goes through the output guards (engine/outputs.py): never onto the text's own file,
one run per output at a time, and in a chapters folder only the files a synth run wrote are removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from voxmill import errors
from voxmill.engine.outputs import OutputFile, OutputFolder
from voxmill.synth.assemble import into_file, into_folder
from voxmill.synth.book import Book, output_suffix
from voxmill.synth.options import SynthOptions
from voxmill.synth.result import SynthResult
from voxmill.synth.speak import AudioChunk, Speaker
from voxmill.synth.voice import resolve_voice

__all__ = ["run", "stream"]

log = logging.getLogger(__name__)


def run(options: SynthOptions) -> SynthResult:
    """Speak ``options.text`` (or the file ``options.input``) into ``options.output``: one audio file
    (wav/flac/ogg/mp3 by suffix), or with ``chapters`` (or when the output is a folder) one file per
    chapter plus ``chapters.json``. With ``srt``, subtitles go beside each audio file.

    Raises ConfigError (a bad option, empty text, unknown voice, a text the voice cannot read) and
    OutputError (the output is the input, another run writes there, an unwritable place, a folder an
    earlier run left without ``resume``/``overwrite``) before anything is synthesized; ProcessingError
    when a piece failed (finished chapters are kept: ``resume`` picks up from there).
    """
    opts = options
    opts.validate()
    output = Path(opts.output)
    if not opts.chapters and (output.is_dir() or not output.suffix):
        opts = replace(opts, chapters=True)  # a folder to write into: one file per chapter
    text, markdown = opts.read_text()
    voice = resolve_voice(opts.voice, opts.voices_dir)
    book = Book.plan(text, markdown, voice, opts, output_suffix(output, opts))
    speaker = Speaker(voice, opts)
    inputs = [Path(opts.input)] if opts.input is not None else []
    started = time.perf_counter()
    if opts.chapters:
        with OutputFolder(output, "synth", inputs, resume=opts.resume, overwrite=opts.overwrite) as guard:
            result = into_folder(book, guard, speaker)
    else:
        with OutputFile(output, inputs):
            result = into_file(book, output, speaker)
    result.wall_seconds = time.perf_counter() - started
    result.notes = book.notes + result.notes
    return result


def stream(options: SynthOptions) -> Iterator[AudioChunk]:
    """Speak ``options.text`` (or ``options.input``): one AudioChunk per piece, in order; the output
    options are not used.

    Pieces are synthesized in parallel ahead of the consumer, within the engine's window. The samples
    are at the voice's own level (no per-sentence normalization; :func:`run` applies one gain to the
    whole output). Raises ConfigError for empty text, an unknown voice or a text in a script the voice
    cannot read (logs a warning when only part of it is), and ProcessingError after the last chunk if
    any piece failed (its chunk has no samples).
    """
    options.validate()
    text, markdown = options.read_text()
    voice = resolve_voice(options.voice, options.voices_dir)
    book = Book.plan(text, markdown, voice, options)
    for note in book.notes:
        log.warning("%s", note.message)
    speaker = Speaker(voice, options)
    yield from speaker.chunks(book.pieces)
    if speaker.failures:
        failures = speaker.failures
        raise errors.ProcessingError(f"{len(failures)} piece(s) failed: {'; '.join(failures[:3])}")
