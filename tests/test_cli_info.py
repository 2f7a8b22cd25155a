"""``voxmill info`` through the installed console script, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voxmill import __version__
from voxmill.audio import Audio, resample, save


def voxmill(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "voxmill", *args], capture_output=True, text=True, cwd=cwd, env=full_env, timeout=120
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, speech: Audio) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("info")
    at44 = Audio(resample(speech.samples, speech.sample_rate, 44100), 44100)
    garbage = folder / "broken.wav"
    garbage.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 64)
    return {
        "a.wav": save(folder / "a.wav", speech),
        "b.mp3": save(folder / "b.mp3", at44),
        "c.flac": save(folder / "c.flac", speech),
        "broken.wav": garbage,
    }


def test_version() -> None:
    result = voxmill("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"voxmill {__version__}"


def test_info_json_gives_durations_and_rates(files: dict[str, Path], speech: Audio) -> None:
    result = voxmill("info", str(files["a.wav"]), str(files["b.mp3"]), str(files["c.flac"]), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["a.wav", "b.mp3", "c.flac"]
    assert [r["sample_rate"] for r in rows] == [22050, 44100, 22050]
    for row in rows:
        assert row["duration"] == pytest.approx(speech.duration, abs=0.06)
        assert row["channels"] == 1
        assert row["peak_dbfs"] == pytest.approx(-6.0, abs=0.3)
        assert -30 < row["lufs"] < -20
        assert row["speech_pct"] > 60
    assert result.stderr == ""


def test_info_garbage_file_is_one_line_and_others_still_reported(files: dict[str, Path]) -> None:
    args = [str(files[n]) for n in ("a.wav", "broken.wav", "c.flac")]
    result = voxmill("info", *args, "--json")
    assert result.returncode == 1
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["a.wav", "broken.wav", "c.flac"]
    assert "error" in rows[1] and "duration" in rows[2]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{files['broken.wav']}: ")
    assert "Traceback" not in result.stderr


def test_info_human_table(files: dict[str, Path]) -> None:
    result = voxmill("info", str(files["a.wav"]), str(files["broken.wav"]), str(files["b.mp3"]))
    assert result.returncode == 1
    out = result.stdout
    for expected in ("a.wav", "b.mp3", "WAV", "MP3", "22050", "44100", "LUFS", "speech %"):
        assert expected in out
    assert "broken.wav" not in out
    assert result.stderr.count("\n") == 1 and "broken.wav" in result.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert voxmill("info").returncode == 2
    assert voxmill("no-such-command").returncode == 2
    bad = tmp_path / "voxmill.yaml"
    bad.write_text("workers: lots\n")
    result = voxmill("--config", str(bad), "info", "x.wav")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"voxmill: config error: {bad}: workers: expected a positive whole number or 'auto', got 'lots'"
    )


def test_help_explains_commands() -> None:
    result = voxmill("info", "--help")
    assert result.returncode == 0
    assert "--json" in result.stdout and "damaged file" in result.stdout


def test_ctrl_c_exits_130(tmp_path: Path, speech: Audio) -> None:
    import signal
    import time

    import numpy as np

    # 45 minutes of speech keeps decoding + VAD busy well past start-up, so the signal lands mid-run.
    long = save(tmp_path / "long.wav", Audio(np.tile(speech.samples, 180), speech.sample_rate))
    # A background job of a non-interactive shell starts with SIGINT ignored (so would this child):
    # restore the default, as a terminal's foreground process has it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxmill", "info", str(long)],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    time.sleep(2.0)
    assert proc.poll() is None, "finished before the signal: make the file longer"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert err.strip().endswith("voxmill: interrupted")


def test_info_silence_and_speech_never_add_past_100(tmp_path: Path, speech: Audio) -> None:
    import numpy as np

    # Speech, then 3 s of room tone: both measures have something to find, and must not overlap.
    quiet = np.random.default_rng(0).normal(0, 1e-4, 3 * speech.sample_rate).astype(np.float32)
    path = save(tmp_path / "pause.wav", Audio(np.concatenate([speech.samples, quiet]), speech.sample_rate))
    result = voxmill("info", str(path), "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["silence_pct"] >= 100 * 2.5 / row["duration"]  # the trailing pause is silence
    assert row["speech_pct"] > 50 and row["silence_pct"] + row["speech_pct"] <= 100.0 + 1e-9
    plain = json.loads(voxmill("info", str(path), "--json", "--no-vad").stdout)
    assert plain["speech_pct"] is None and plain["silence_pct"] >= row["silence_pct"]


def test_info_stereo_peak_is_the_loudest_channel(tmp_path: Path, speech: Audio) -> None:
    import numpy as np

    # Channels in opposite phase: their mix is silence, the file is not.
    path = save(tmp_path / "wide.wav", Audio(np.stack([speech.samples, -speech.samples], axis=1), speech.sample_rate))
    row = json.loads(voxmill("info", str(path), "--json", "--no-vad").stdout)
    assert row["channels"] == 2 and row["peak_dbfs"] == pytest.approx(-6.0, abs=0.3) and row["lufs"] > -30
