"""Issue 18's resume state attacked as a hostile user would: state that does not check out is run again.

convert's parts (``.NAME.voxmill-state/``), synth's journal (``OUT/.voxmill/journal.db``) and
prepare's finished mark (``OUT/.voxmill/finished.json``) live where anyone who can write beside the
output can edit them, and the input can change under a resume in ways its size and mtime do not show.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import convert_processors as procs
from hostile import ljspeech
from voxmill.audio import Audio, load, save
from voxmill.audio.slicing import SliceOptions
from voxmill.convert import ConvertOptions, convert_file
from voxmill.corpus.sources import parse_source
from voxmill.engine import RunOptions
from voxmill.errors import ProcessingError
from voxmill.prepare import PrepareOptions
from voxmill.prepare import run as prepare
from voxmill.prepare.finished import MARK, read_mark
from voxmill.synth import SynthOptions
from voxmill.synth import run as synth
from voxmill.synth.book import Book
from voxmill.synth.parts import JOURNAL, BookJournal
from voxmill.synth.voice import resolve_voice

SERIAL = ConvertOptions(
    slicing=SliceOptions(max_seconds=3.0, min_seconds=1.0), run=RunOptions(backend="serial", progress=False)
)


# -- convert --resume ----------------------------------------------------------------------------


@pytest.fixture
def killed(tmp_path: Path, speech: Audio) -> tuple[Path, Path, procs.FailUntil, Path]:
    """(input, output, processor, reference): a convert that stopped at chunk 4 with chunks 0-3 kept as
    parts, and the bytes an uninterrupted run writes."""
    source = save(tmp_path / "in" / "long.wav", Audio(np.tile(speech.samples, 2), speech.sample_rate))
    marker = tmp_path / "ready"
    processor = procs.FailUntil(marker=str(marker), index=4)
    out = tmp_path / "out" / "long.wav"
    with pytest.raises(ProcessingError):
        convert_file(source, out, processor, dataclasses.replace(SERIAL, strict=True))
    marker.touch()
    reference = convert_file(source, tmp_path / "reference.wav", processor, SERIAL).output
    return source, out, processor, reference


def _state(out: Path) -> Path:
    return out.with_name(f".{out.name}.voxmill-state")


def _records(out: Path) -> list[tuple[str, dict[str, Any]]]:
    with sqlite3.connect(_state(out) / "journal.sqlite") as db:
        rows = db.execute("SELECT id, value FROM records WHERE status = 'ok'").fetchall()
    return sorted((key, json.loads(value)) for key, value in rows)


def _part(out: Path, key: str) -> Path:
    return _state(out) / "parts" / f"{key.split(':')[0]}-{key.split(':')[1]}.npy"


def test_an_input_rewritten_in_place_with_its_old_size_and_mtime_is_converted_again(
    killed: tuple[Path, Path, procs.FailUntil, Path], tmp_path: Path
) -> None:
    source, out, processor, _ = killed
    before = os.stat(source)
    quieter = load(source)
    rewritten = save(tmp_path / "quieter.wav", Audio(quieter.samples * np.float32(0.1), quieter.sample_rate))
    assert rewritten.stat().st_size == before.st_size
    with open(source, "r+b") as fh:  # same inode, same size ...
        fh.write(rewritten.read_bytes())
    os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))  # ... and the old mtime back
    result = convert_file(source, out, processor, dataclasses.replace(SERIAL, resume=True))
    # Before the fix every finished chunk of the old audio was stitched into the new file.
    assert result.resumed_chunks == 0
    assert out.read_bytes() == convert_file(source, tmp_path / "fresh.wav", processor, SERIAL).output.read_bytes()


@pytest.mark.parametrize("damage", ["nan", "short", "channels", "huge", "context"])
def test_a_part_that_is_not_what_a_worker_makes_is_run_again(
    killed: tuple[Path, Path, procs.FailUntil, Path], damage: str
) -> None:
    source, out, processor, reference = killed
    records = _records(out)
    assert len(records) == 4
    key, record = records[1]
    part = _part(out, key)
    if damage == "nan":  # the record and shape check out; the samples do not
        samples = np.load(part)
        samples[::7] = np.nan
        np.save(part, samples)
    elif damage == "context":  # a record claiming other context would shift the chunk in the output
        record["pad_left"] += 1000
    else:  # a part and a record that agree with each other, not with the chunk
        shape = {"short": [10], "channels": [record["shape"][0], 7], "huge": [50_000_000]}[damage]
        np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=tuple(shape)).flush()
        record["shape"] = shape
    with sqlite3.connect(_state(out) / "journal.sqlite") as db:
        db.execute("UPDATE records SET value = ? WHERE id = ?", (json.dumps(record), key))
    result = convert_file(source, out, processor, dataclasses.replace(SERIAL, resume=True))
    assert result.resumed_chunks == 3  # the others are still good
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize("plant", ["parts_file", "part_folder", "parts_fifo"])
def test_things_planted_in_the_state_folder_do_not_stop_the_run(
    killed: tuple[Path, Path, procs.FailUntil, Path], plant: str
) -> None:
    source, out, processor, reference = killed
    parts = _state(out) / "parts"
    if plant == "part_folder":  # a folder named like a part: the part could not be written there
        first = _part(out, _records(out)[0][0])
        first.unlink()
        first.mkdir()
        (first / "x").write_text("x")
    else:
        shutil.rmtree(parts)
        parts.write_text("x") if plant == "parts_file" else os.mkfifo(parts)
    result = convert_file(source, out, processor, dataclasses.replace(SERIAL, resume=True))
    assert result.resumed_chunks == (3 if plant == "part_folder" else 0)
    assert out.read_bytes() == reference.read_bytes() and not _state(out).exists()


# -- synth: the journal of a chapters folder -----------------------------------------------------

BOOK = "# One\n\nThe first chapter is short.\n\n# Two\n\nThe second chapter is short too.\n"


def _synth(book: Path, out: Path, **options: Any) -> Any:
    return synth(SynthOptions(input=book, output=out, chapters=True, noise_scale=0.0, noise_w=0.0,
                              run=RunOptions(workers=1, progress=False), **options))  # fmt: skip


@pytest.mark.parametrize("gain", [300.0, 1e308, float("inf"), float("nan")])
def test_a_forged_level_in_the_journal_is_not_applied_to_the_chapters_written_next(tmp_path: Path, gain: float) -> None:
    book = tmp_path / "book.md"
    book.write_text(BOOK)
    out = tmp_path / "out"
    _synth(book, out)
    with sqlite3.connect(out / ".voxmill" / "journal.db") as db:
        for key, value in db.execute("SELECT id, value FROM records WHERE id LIKE 'file:%'").fetchall():
            record = json.loads(value)
            record["level"]["gain_db"] = gain
            db.execute("UPDATE records SET value = ? WHERE id = ?", (json.dumps(record), key))
    book.write_text(BOOK.replace("short too", "a little longer"))  # chapter two is spoken again
    result = _synth(book, out, resume=True)  # 1e308, inf and NaN were tracebacks; 300 dB wrote noise
    for name in ("01-one.wav", "02-two.wav"):
        samples = load(out / name).samples
        assert np.isfinite(samples).all() and np.sqrt(np.mean(samples**2)) < 0.2, name
    assert result.loudness is not None and abs(result.loudness.gain_db) < 40


def test_a_file_in_place_of_the_parts_folder_does_not_stop_a_resume(tmp_path: Path) -> None:
    book = tmp_path / "book.md"
    book.write_text(BOOK)
    out = tmp_path / "out"
    _synth(book, out)
    (out / ".voxmill" / "parts").write_text("x")  # was a FileExistsError traceback
    book.write_text(BOOK.replace("short too", "a little longer"))
    result = _synth(book, out, resume=True)
    assert [c.resumed for c in result.chapters] == [True, False]


def test_a_single_file_resume_says_which_chapters_it_kept(tmp_path: Path) -> None:
    book = tmp_path / "book.md"
    book.write_text(BOOK)
    out = tmp_path / "book.wav"
    opts = SynthOptions(input=book, output=out, noise_scale=0.0, noise_w=0.0, run=RunOptions(workers=1, progress=False))
    first = synth(opts)
    # What a run that finished chapter one only (killed, or a piece failed) leaves: its part and record.
    state = out.with_name(f".{out.name}.parts")
    state.mkdir()
    key = Book.plan(BOOK, True, resolve_voice(opts.voice), opts).key(0)
    rate = load(out).sample_rate
    frames = round(first.chapters[0].duration * rate)
    sf.write(state / f"{key}.wav", np.zeros(frames, np.float32), rate, subtype="FLOAT")
    with BookJournal(state / JOURNAL) as journal:
        journal.record_part(key, frames, [])
    result = synth(dataclasses.replace(opts, resume=True))
    assert [c.resumed for c in result.chapters] == [True, False]  # the CLI counts these ("1 resumed")


# -- prepare: the finished mark ------------------------------------------------------------------


@pytest.fixture
def prepared(tmp_path: Path, short_speech: Audio) -> PrepareOptions:
    src = ljspeech(tmp_path / "src", [("a", "Some words."), ("b", "Other words.")], short_speech)
    opts = PrepareOptions([parse_source(str(src))], tmp_path / "out", run=RunOptions(workers=1, progress=False))
    prepare(opts)
    opts.resume = True
    assert prepare(opts).unchanged
    return opts


@pytest.mark.parametrize("edit", ["metadata", "clip"])
def test_an_output_file_edited_since_the_finished_run_runs_every_row_again(prepared: PrepareOptions, edit: str) -> None:
    out = prepared.out
    if edit == "metadata":
        (out / "metadata.csv").write_text("x|y\n")
    else:  # same size, old mtime: only its ctime tells
        clip = out / "wavs" / "a.wav"
        before = os.stat(clip)
        data = bytearray(clip.read_bytes())
        data[-100:] = bytes(100)
        clip.write_bytes(bytes(data))
        os.utime(clip, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = prepare(prepared)  # was "nothing to do" over the damaged file
    assert not result.unchanged and result.counts == {"ok": 2}
    assert (out / "metadata.csv").read_text().startswith("a|")
    assert prepare(prepared).unchanged


def test_an_oversized_finished_mark_is_not_read(prepared: PrepareOptions) -> None:
    mark = prepared.out / ".voxmill" / MARK
    assert read_mark(mark.parent) is not None
    with open(mark, "ab") as fh:  # still valid JSON, and larger than any mark a run writes
        fh.write(b" " * (20 << 20))  # a GiB of it would have been read whole into memory
    assert read_mark(mark.parent) is None
    assert not prepare(prepared).unchanged


def test_a_voice_rewritten_in_place_with_its_old_size_and_mtime_speaks_every_chapter_again(tmp_path: Path) -> None:
    voice = resolve_voice("piper:en_US-joe-medium")
    voices = tmp_path / "voices"
    voices.mkdir()
    model = voices / "mine.onnx"
    shutil.copyfile(voice.path, model)
    shutil.copyfile(voice.path.with_name(voice.path.name + ".json"), voices / "mine.onnx.json")
    book = tmp_path / "book.md"
    book.write_text(BOOK)
    out = tmp_path / "out"
    _synth(book, out, voice="mine", voices_dir=voices)
    before = os.stat(model)
    with open(model, "r+b") as fh:  # a retrained export of the same size, its mtime set back
        fh.write(model.read_bytes())
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = _synth(book, out, voice="mine", voices_dir=voices, resume=True)
    assert [c.resumed for c in result.chapters] == [False, False]  # were both kept: another voice's audio


# -- convert: short chunks at another output rate --------------------------------------------------


@pytest.mark.parametrize("rate", [16000, 48000])
def test_short_chunks_convert_to_another_rate(tmp_path: Path, speech: Audio, rate: int) -> None:
    # With --chunk-seconds 3 the tail split shrinks chunks to the search window, where a forced cut
    # landed on a quiet hop 10 ms in: a chunk shorter than its crossfades. At the input's rate that
    # slipped through; at another, the stitcher stopped with "chunk at N does not follow" (a traceback).
    source = save(tmp_path / "in.wav", Audio(np.tile(speech.samples, 2), speech.sample_rate))
    slicing = SliceOptions(max_seconds=3.0, min_seconds=1.0)
    opts = dataclasses.replace(SERIAL, slicing=slicing, sample_rate=rate)
    result = convert_file(source, tmp_path / "out.wav", procs.MonoOnly(), opts)
    frames = load(source).samples.shape[0]
    assert load(result.output).samples.shape[0] == round(frames * rate / speech.sample_rate)


def test_no_chunk_beside_a_forced_cut_is_shorter_than_its_fades(speech: Audio) -> None:
    from voxmill.audio.slicing import slice_blocks
    from voxmill.audio.types import Block

    samples = np.tile(speech.samples, 3)
    sr = speech.sample_rate
    block = sr * 30
    starts = range(0, samples.shape[0], block)
    blocks = (Block(n, i, samples[i : i + block], sr) for n, i in enumerate(starts))
    opts = SliceOptions(max_seconds=3.0, min_seconds=1.0)
    chunks = list(slice_blocks(blocks, opts, samples.shape[0]))
    assert chunks[-1].end == samples.shape[0] and all(a.end == b.start for a, b in itertools.pairwise(chunks))
    fades = 2 * opts.checked().pad_seconds * sr
    short = [
        (c.index, c.end - c.start) for c in chunks if (c.forced_start or c.forced_end) and c.end - c.start <= fades
    ]
    assert short == []  # were a dozen chunks of 220 samples (one hop)
