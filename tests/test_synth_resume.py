"""synth's one resume mechanism (the engine's journal): a run killed with SIGKILL and resumed writes
exactly the bytes an uninterrupted run writes, and speaks only the chapters the journal does not hold."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from voxmill.engine import Journal, RunOptions
from voxmill.synth import SynthOptions, SynthResult, run
from voxmill.synth import output as synth_output

SENTENCES = "The wheel turned slowly. Water ran over the old stones. Anna crossed the yard. The lantern swung."
BOOK = "\n\n".join(f"Chapter {n}\n\n{SENTENCES}" for n in (1, 2, 3, 4))
STILL = ["--noise-scale", "0", "--noise-w", "0", "--workers", "1"]


def _options(book: Path, output: Path, **options: Any) -> SynthOptions:
    return SynthOptions(input=book, output=output, noise_scale=0.0, noise_w=0.0,
                        run=RunOptions(workers=1, progress=False), **options)  # fmt: skip


def _killed_after_a_part(args: list[str], parts: Path, journal: Path) -> None:
    """Start ``voxmill synth ARGS`` and SIGKILL it once a chapter's part is finished (and journaled)."""
    command = [sys.executable, "-m", "voxmill", "--quiet", "synth", *args, *STILL]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))

    def finished_parts() -> list[Path]:
        return [p for p in parts.glob("*.wav") if not p.name.startswith(".")] if parts.is_dir() else []

    deadline = time.monotonic() + 120
    while not finished_parts():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no part was finished"
        time.sleep(0.01)
    time.sleep(0.05)  # the journal record follows the part's rename at once
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert journal.exists()


def _finished_chapters(journal: Path) -> int:
    with Journal(journal) as records:
        return sum(1 for key in records.ids() if key.startswith("part:"))


def _resumed(book: Path, output: Path, journal: Path, reference: SynthResult, **options: bool) -> SynthResult:
    finished = _finished_chapters(journal)
    assert 1 <= finished < 4
    result = run(_options(book, output, resume=True, **options))
    # Only the chapters the journal did not hold were spoken again.
    assert result.pieces == reference.pieces * (4 - finished) // 4
    return result


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "book.txt"
    path.write_text(BOOK, encoding="utf-8")
    return path


def _measured_as_spoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """The level comes from what was spoken (the resumed parts read once, in order), never from reading
    every part back at the end."""

    def read_back(*args: object) -> None:
        raise AssertionError("the parts were read back to be measured")

    monkeypatch.setattr(synth_output, "measure", read_back)


def test_single_file_killed_and_resumed_is_byte_identical(
    book: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _measured_as_spoken(monkeypatch)
    reference = run(_options(book, tmp_path / "reference.wav", srt=True))
    assert reference.pieces == 4 * 5
    out = tmp_path / "book.wav"
    parts = tmp_path / ".book.wav.parts"
    _killed_after_a_part(["-i", str(book), "-o", str(out), "--srt"], parts, parts / "journal.db")
    assert not out.exists()
    _resumed(book, out, parts / "journal.db", reference, srt=True)
    assert out.read_bytes() == (tmp_path / "reference.wav").read_bytes()
    assert out.with_suffix(".srt").read_text() == (tmp_path / "reference.srt").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.srt", "book.wav", "reference.srt", "reference.wav"]


def test_chapters_killed_and_resumed_are_byte_identical(
    book: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _measured_as_spoken(monkeypatch)
    reference = run(_options(book, tmp_path / "reference", chapters=True))
    out = tmp_path / "out"
    journal = out / ".voxmill" / "journal.db"
    _killed_after_a_part(["-i", str(book), "-o", str(out), "--chapters"], out / ".voxmill" / "parts", journal)
    _resumed(book, out, journal, reference, chapters=True)
    names = sorted(p.name for p in (tmp_path / "reference").iterdir() if p.is_file())
    assert names == ["01-chapter-1.wav", "02-chapter-2.wav", "03-chapter-3.wav", "04-chapter-4.wav", "chapters.json"]
    for name in names:
        assert (out / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    # Finished: the journal says every chapter file is written, so a rerun speaks nothing.
    again = run(_options(book, out, chapters=True, resume=True))
    assert again.pieces == 0 and again.plan is None and all(c.resumed for c in again.chapters)
    assert not (out / ".voxmill" / "parts").exists()


@pytest.mark.parametrize(
    "tamper",
    [
        lambda journal: journal.write_bytes(b"not a journal"),
        lambda journal: journal.unlink(),
    ],
)
def test_a_journal_that_is_not_one_speaks_everything_again(
    book: Path, tmp_path: Path, tamper: Callable[[Path], None]
) -> None:
    out = tmp_path / "out"
    first = run(_options(book, out, chapters=True))
    index = json.loads((out / "chapters.json").read_text())
    tamper(out / ".voxmill" / "journal.db")
    again = run(_options(book, out, chapters=True, resume=True))
    assert again.pieces == first.pieces and not any(c.resumed for c in again.chapters)
    assert json.loads((out / "chapters.json").read_text()) == index
