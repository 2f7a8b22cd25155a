"""Nothing left behind: temp files of killed runs, staging after success, an earlier run's outputs."""

from __future__ import annotations


def _convert_slowly(source, out):  # type: ignore[no-untyped-def]
    """A convert that takes many seconds (WORLD pitch, one chunk at a time), started in the background."""
    import os
    import subprocess
    import sys

    args = ["convert", str(source), str(out), "-p", "pitch", "--semitones", "3", "--no-parallel"]
    args += ["--chunk-seconds", "4"]
    return subprocess.Popen([sys.executable, "-m", "voxmill", "--quiet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))  # fmt: skip


def _wait_for(condition, proc, seconds=60.0):  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_convert_killed_mid_write_leaves_nothing_after_the_next_run(tmp_path, speech) -> None:  # type: ignore[no-untyped-def]
    import signal

    import numpy as np

    from hostile import no_traceback, voxmill
    from voxmill.audio import Audio, save

    source = save(tmp_path / "long.wav", Audio(np.tile(speech.samples, 3), speech.sample_rate))
    folder = tmp_path / "out"
    out = folder / "changed.wav"
    proc = _convert_slowly(source, out)
    temps = lambda: [p for p in folder.glob(".changed.*.tmp.wav") if p.stat().st_size > 10_000]  # noqa: E731
    try:
        _wait_for(lambda: folder.is_dir() and bool(temps()), proc)  # some chunks written, more to come
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert temps() and not out.exists()  # what a SIGKILL leaves: a half-written temp file
    done = voxmill("convert", str(source), str(out), "-p", "loudness")
    no_traceback(done)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["changed.wav"]  # no temp file, no lock file


def test_prepare_leaves_no_staged_audio_and_no_earlier_run_files(tmp_path, short_speech):
    import pyarrow.parquet as pq

    from hostile import ljspeech, no_traceback, voxmill

    rows = [(f"s{i}", f"Leftover sentence {i}.") for i in range(4)]
    src = ljspeech(tmp_path / "src", rows, short_speech)
    out = tmp_path / "out"
    done = voxmill("prepare", str(src), "-o", str(out), "-f", "hf", "-f", "piper", "--workers", "1")
    assert done.returncode == 0, done.stderr
    state_audio = [p for p in (out / ".voxmill").rglob("*") if p.suffix in (".wav", ".flac")]
    assert state_audio == [], state_audio  # the staged FLAC/WAV copies are gone after success
    assert pq.read_table(out / "hf" / "train-00000-of-00001.parquet").num_rows == 4
    (out / "notes.txt").write_text("the user's own file")

    # The same folder again: refused without a word on what to do with the earlier run.
    again = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    no_traceback(again)
    assert again.returncode == 2 and "--resume" in again.stderr and "--overwrite" in again.stderr

    # Two rows fewer (one gone from the metadata, one too long now): their wavs must not stay.
    (src / "metadata.csv").write_text("".join(f"{i}|{t}\n" for i, t in rows[:3]))
    ok_seconds = 1.0  # every clip is longer, so --max-duration drops them all but through --resume
    for flag in ("--overwrite", "--resume"):
        done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", flag)
        assert done.returncode == 0, (flag, done.stderr)
        assert sorted(p.name for p in (out / "wavs").glob("*")) == ["s0.wav", "s1.wav", "s2.wav"], flag
        assert not (out / "hf").exists(), flag  # this run wrote no parquet
        assert (out / "notes.txt").read_text() == "the user's own file", flag
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--resume", "--max-duration", str(ok_seconds))
    assert done.returncode == 0, done.stderr
    assert not (out / "wavs").exists() or not list((out / "wavs").glob("*.wav"))  # now dropped: no old wavs
    assert (out / "notes.txt").exists()
