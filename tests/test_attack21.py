"""Attacks on ``voxmill segment`` (issue 21) as a hostile or careless user would run it.

Each test guards a problem found by hand (a renamed stem that took another input's name, one recording
given twice, an unknown --asr exiting 1, a FIFO as the book blocking for ever, a 29-s clip heard as "The")
or behaviour that holds and that tests/test_segment*.py do not cover. Real Piper speech, Silero VAD and
faster-whisper throughout; every run uses one worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from voxmill.audio import Audio


def voxmill_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxmill", "--quiet", *args], capture_output=True, text=True, timeout=timeout
    )


def segment_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return voxmill_cli("segment", *args, "--workers", "1", timeout=timeout)


def _report(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "report.jsonl").read_text(encoding="utf-8").splitlines()]


def _one_line(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.fixture(scope="module")
def talk(speech: Audio, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 13 s of the bundled voice reading three sentences (one clip at the default bounds)."""
    path = tmp_path_factory.mktemp("talk") / "talk.wav"
    sf.write(str(path), speech.samples, speech.sample_rate, subtype="PCM_16")
    return path


# ---- ids and duplicated inputs -------------------------------------------------------------------------


def test_a_renamed_stem_never_collides_with_another_inputs_stem(talk: Path, tmp_path: Path) -> None:
    inputs = [tmp_path / "a" / "speech.wav", tmp_path / "b" / "speech.wav", tmp_path / "speech-2.wav"]
    for path in inputs:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(talk.read_bytes())
    out = tmp_path / "out"
    done = segment_cli(*map(str, inputs), "-o", str(out))
    assert done.returncode == 0, done.stderr
    ids = [e["id"] for e in _report(out)]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(2)
    rows = (out / "metadata.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(list((out / "wavs").glob("*.wav"))) == 3, rows


@pytest.mark.parametrize("how", ["same path", "symlink"])
def test_one_recording_given_twice_is_not_a_dataset_of_doubles(how: str, talk: Path, tmp_path: Path) -> None:
    second = talk
    if how == "symlink":
        second = tmp_path / "alias.wav"
        second.symlink_to(talk)
    out = tmp_path / "out"
    done = segment_cli(str(talk), str(second), "-o", str(out))
    if done.returncode == 2:
        _one_line(done)
        assert second.name in done.stderr and not out.exists(), done.stderr
        return
    assert done.returncode == 0, done.stderr
    spans = [(os.path.realpath(e["source"]), e["start"], e["end"]) for e in _report(out) if e["status"] == "ok"]
    assert spans and len(spans) == len(set(spans)), spans


# ---- options that are usage errors before any work ----------------------------------------------------


def test_an_unknown_asr_model_is_a_usage_error(talk: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = segment_cli(str(talk), "-o", str(out), "--asr", "whisper:nonexistent")
    _one_line(done)
    assert done.returncode == 2 and "whisper:nonexistent" in done.stderr, done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--language", "ru"], "--language"),  # the English-only model: refused once, not per window
        (["--asr", "piper:en_US-joe-medium"], "--asr"),
        (["--speaker", "a|b"], "--speaker"),
        (["--speaker", "a\nb"], "--speaker"),
        (["--format", "csv"], "--format"),
    ],
)
def test_options_the_run_cannot_honour_are_refused_before_the_output_exists(
    flags: list[str], named: str, talk: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    done = segment_cli(str(talk), "-o", str(out), *flags)
    _one_line(done)
    assert done.returncode == 2 and named in done.stderr, done.stderr
    assert not out.exists()


# ---- the book's path ------------------------------------------------------------------------------------


def test_a_fifo_as_the_book_is_refused_not_waited_on(talk: Path, tmp_path: Path) -> None:
    book = tmp_path / "book.fifo"
    os.mkfifo(book)
    out = tmp_path / "out"
    try:
        done = segment_cli(str(talk), "-o", str(out), "--text", str(book), timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("voxmill segment --text FIFO still waiting after 20 s")
    _one_line(done)
    assert done.returncode == 2 and "book.fifo" in done.stderr, done.stderr
    assert not out.exists()


@pytest.mark.parametrize("where", ["inside OUT", "OUT is its folder"])
def test_a_book_inside_the_output_folder_is_refused(where: str, talk: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    book = out / ("книга" if where == "inside OUT" else "") / "book.txt"
    book.parent.mkdir(parents=True)
    book.write_text("Voxmill turns raw recordings into training-ready speech datasets.\n", encoding="utf-8")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    done = segment_cli(str(talk), "-o", str(out), "--text", str(book))
    _one_line(done)
    assert done.returncode == 2 and "book.txt" in done.stderr, done.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


# ---- recordings without speech, and speech without pauses --------------------------------------------


@pytest.mark.parametrize("kind", ["silence", "noise"])
def test_a_recording_without_speech_gives_no_clips_and_sane_stats(kind: str, tmp_path: Path) -> None:
    sr = 22050
    samples = np.zeros(10 * sr, np.float32)
    if kind == "noise":
        samples = (np.random.default_rng(0).standard_normal(10 * sr) * 0.1).astype(np.float32)
    source = tmp_path / f"{kind}.flac"
    sf.write(str(source), samples, sr)
    out = tmp_path / "out"
    done = segment_cli(str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["hours_in"] == pytest.approx(10 / 3600, abs=1e-4)
    assert (stats["clips"], stats["kept"], stats["hours_kept"], stats["failed_files"]) == (0, 0, 0.0, [])
    (entry,) = _report(out)  # the recording still has its line: why nothing came of it
    assert (entry["source"], entry["status"], entry["code"]) == (str(source), "dropped", "no speech found")
    assert (out / "metadata.csv").read_text(encoding="utf-8") == ""


def _without_pauses(speech: Audio, seconds: float) -> np.ndarray:
    """The voice's speech with every quiet 20-ms frame taken out, repeated up to ``seconds``: talk that no
    pause splits (a fast speaker, crosstalk), as one run of VAD speech."""
    frame = int(0.02 * speech.sample_rate)
    frames = speech.samples[: speech.samples.shape[0] // frame * frame].reshape(-1, frame)
    voiced = frames[np.sqrt((frames**2).mean(axis=1)) > 0.003].reshape(-1)
    repeats = int(np.ceil(seconds * speech.sample_rate / voiced.shape[0]))
    return np.tile(voiced, repeats)[: int(seconds * speech.sample_rate)]


def test_a_clip_near_thirty_seconds_is_transcribed_whole(speech: Audio, tmp_path: Path) -> None:
    source = tmp_path / "talk29.wav"
    sf.write(str(source), _without_pauses(speech, 29.0), speech.sample_rate, subtype="PCM_16")
    out = tmp_path / "out"
    done = segment_cli(str(source), "-o", str(out), "--max-seconds", "30")
    assert done.returncode == 0, done.stderr
    (entry,) = _report(out)
    assert entry["end"] - entry["start"] > 28
    # The voice reads ~20 characters a second; half of that is a transcript, one word is not.
    assert len(entry["asr_text"]) >= 10 * 29, entry
    assert entry["status"] == "ok", entry


# ---- resume with other options --------------------------------------------------------------------------


def test_resume_with_other_bounds_gives_a_fresh_runs_output(talk: Path, tmp_path: Path) -> None:
    """A run with a bad input keeps its state (journal, plans, staged clips); resuming it with other clip
    bounds must plan and cut anew, never mix the old clips into the new plan."""
    long = tmp_path / "long.wav"
    pause = np.zeros(22050, np.float32)
    talk_samples, sr = sf.read(str(talk), dtype="float32")
    sf.write(str(long), np.concatenate([talk_samples, pause] * 3), sr, subtype="PCM_16")
    broken = tmp_path / "broken.wav"
    data = long.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # the header promises twice the samples
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    first = segment_cli(str(long), str(broken), "-o", str(out))
    assert first.returncode == 1 and (out / ".voxmill" / "journal.db").exists(), first.stderr
    bounds = ["--min-seconds", "0.5", "--max-seconds", "6"]
    resumed = segment_cli(str(long), str(broken), "-o", str(out), *bounds, "--resume")
    assert resumed.returncode == 1, resumed.stderr
    again = segment_cli(str(long), str(broken), "-o", str(fresh), *bounds)
    assert again.returncode == 1, again.stderr
    report = _report(out)
    assert report == _report(fresh)
    kept = [e for e in report if e["status"] == "ok"]
    assert len(kept) > 3 and all(0.5 <= e["duration"] <= 6 for e in kept), kept
    assert (out / "metadata.csv").read_text(encoding="utf-8") == (fresh / "metadata.csv").read_text(encoding="utf-8")
    ids = [e["id"] for e in report]
    assert len(ids) == len(set(ids))
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert stats["hours_kept"] == pytest.approx(sum(e["duration"] for e in kept) / 3600, abs=1e-4)
