"""convert --resume: a long file's finished chunks survive a killed or failed run (engine journal + parts)."""

from __future__ import annotations

import dataclasses
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import convert_processors as procs
from voxmill.audio import Audio, save
from voxmill.audio.slicing import SliceOptions
from voxmill.convert import ConvertOptions, convert_file
from voxmill.engine import RunOptions
from voxmill.errors import ProcessingError

SERIAL = ConvertOptions(
    slicing=SliceOptions(max_seconds=3.0, min_seconds=1.0), run=RunOptions(backend="serial", progress=False)
)


def state_of(out: Path) -> Path:
    return out.with_name(f".{out.name}.voxmill-state")


@pytest.fixture
def source(tmp_path: Path, speech: Audio) -> Path:
    """About 30 s of real speech."""
    return save(tmp_path / "in" / "long.wav", Audio(np.tile(speech.samples, 2), speech.sample_rate))


def _fail_at_chunk(source: Path, out: Path, processor: procs.FailUntil) -> None:
    """A run that ends (strict) at the processor's chunk: the chunks before it are finished."""
    with pytest.raises(ProcessingError, match="--resume"):
        convert_file(source, out, processor, dataclasses.replace(SERIAL, strict=True))
    assert state_of(out).is_dir()


def test_resume_skips_finished_chunks_and_writes_the_same_bytes(source: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    processor = procs.FailUntil(marker=str(marker), index=4)
    reference = tmp_path / "reference.wav"
    marker.touch()
    clean = convert_file(source, reference, processor, SERIAL)
    marker.unlink()
    assert clean.chunks > 6 and clean.resumed_chunks == 0
    out = tmp_path / "out" / "changed.wav"
    _fail_at_chunk(source, out, processor)
    assert not out.exists()
    parts = sorted(p.name for p in (state_of(out) / "parts").iterdir())
    marker.touch()  # the chunk can be processed now
    # A damaged part is run again, never stitched: its record alone does not count as finished.
    (state_of(out) / "parts" / parts[1]).write_bytes(b"\x93NUMPY garbage")
    result = convert_file(source, out, processor, dataclasses.replace(SERIAL, resume=True))
    assert result.resumed_chunks == len(parts) - 1 >= 3 and result.kept_original == []
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["changed.wav"]  # the state went with the finish


def test_without_resume_or_with_other_options_nothing_is_reused(source: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    out = tmp_path / "out.wav"
    _fail_at_chunk(source, out, procs.FailUntil(marker=str(marker), index=4))
    marker.touch()
    other = procs.FailUntil(marker=str(marker), index=4, gain=0.25)  # another option: other chunks
    reference = convert_file(source, tmp_path / "reference.wav", other, SERIAL).output
    result = convert_file(source, out, other, dataclasses.replace(SERIAL, resume=True))
    assert result.resumed_chunks == 0 and out.read_bytes() == reference.read_bytes()
    marker.unlink()
    _fail_at_chunk(source, out, procs.FailUntil(marker=str(marker), index=4))
    marker.touch()
    again = convert_file(source, out, procs.FailUntil(marker=str(marker), index=4), SERIAL)  # no --resume
    assert again.resumed_chunks == 0 and not state_of(out).exists()


def _voxmill(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "voxmill", "--quiet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_cli_kill_9_mid_file_then_resume_gives_the_uninterrupted_bytes(source: Path, tmp_path: Path) -> None:
    args = ["-p", "pitch", "--semitones", "3", "--no-parallel", "--chunk-seconds", "3"]
    reference = tmp_path / "reference.wav"
    done = _voxmill("convert", str(source), str(reference), *args)
    assert done.wait(300) == 0, done.communicate()
    out = tmp_path / "out" / "changed.wav"
    parts = state_of(out) / "parts"
    first = _voxmill("convert", str(source), str(out), *args)
    try:
        deadline = time.monotonic() + 120
        while len(list(parts.glob("*.npy"))) < 3:  # some chunks finished, more to come
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.02)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    assert first.returncode == -signal.SIGKILL and not out.exists()
    finished = len(list(parts.glob("*.npy")))
    resumed = _voxmill("convert", str(source), str(out), *args, "--resume")
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    # Every finished part is reused (but one, when the kill fell between a part and its record).
    count = re.search(r"(\d+) resumed", stdout)
    assert count is not None and finished - 1 <= int(count[1]) <= finished and int(count[1]) >= 2, stdout
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["changed.wav"]  # no state, lock or temp file left


def test_a_run_that_finished_no_chunk_leaves_no_state(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    opts = dataclasses.replace(SERIAL, strict=True, window=1)  # chunk 0 alone in flight: none finishes
    with pytest.raises(ProcessingError):
        convert_file(source, out, procs.FailUntil(marker=str(tmp_path / "never"), index=0), opts)
    assert list(tmp_path.iterdir()) == [tmp_path / "in"]  # no output, no state, no lock, no temp file
