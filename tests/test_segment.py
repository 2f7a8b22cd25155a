"""``voxmill segment`` end to end on an audiobook read by the bundled Piper voice, whose true timeline is known
(scripts/make_audiobook.py): text quality against the book, clip bounds, ``voxmill check``, kill and resume,
hostile inputs and options, flat memory on a 2-hour file. Real Silero VAD and faster-whisper throughout."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import voxmill
from voxmill import errors
from voxmill.corpus import file_name
from voxmill.engine import RunOptions
from voxmill.segment import SegmentOptions, SegmentResult
from voxmill.segment.align import cer, normalize

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_audiobook.py"
BOOK = ROOT / "tests" / "data" / "mill.md"
REPEAT, SKIP = 3, 6  # the book's paragraph 3 is read twice, paragraph 6 (the second chapter's title) not at all
NEIGHBOURS = (REPEAT - 1, REPEAT + 1, SKIP - 1, SKIP + 1)
GOOD_CER = 0.05


def voxmill_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "voxmill", "--quiet", *args], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@dataclass(frozen=True)
class Audiobook:
    audio: Path
    truth: list[dict[str, Any]]  # per sentence: start, end (s), text, paragraph, take

    def true_text(self, start: float, end: float) -> str:
        """What is said in [start, end]: the sentences whose middle lies there (cuts fall in pauses)."""
        return " ".join(s["text"] for s in self.truth if start <= (s["start"] + s["end"]) / 2 <= end)


@pytest.fixture(scope="session")
def audiobook(speech_cache: Path) -> Audiobook:
    """mill.md (3 chapters, ~6 min) with paragraph 3 read twice, paragraph 6 skipped, noise under it all;
    made once by scripts/make_audiobook.py, cached by the script's and the book's content."""
    key = hashlib.sha1(SCRIPT.read_bytes() + BOOK.read_bytes() + f"{REPEAT}/{SKIP}".encode()).hexdigest()[:16]
    folder = speech_cache / f"audiobook-{key}"
    if not (folder / "truth.json").exists():
        spec = importlib.util.spec_from_file_location("make_audiobook", SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        samples, sr, truth = module.make(BOOK.read_text(encoding="utf-8"), REPEAT, SKIP, 1, None, -50.0, 0)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        sf.write(tmp / "book.wav", samples, sr, subtype="PCM_16")
        (tmp / "truth.json").write_text(json.dumps(truth, ensure_ascii=False), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return Audiobook(folder / "book.wav", json.loads((folder / "truth.json").read_text(encoding="utf-8")))


def _report(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "report.jsonl").read_text(encoding="utf-8").splitlines()]


def _kept(out: Path) -> list[dict[str, Any]]:
    return [e for e in _report(out) if e["status"] == "ok"]


def _metadata(out: Path) -> dict[str, str]:
    # Piper's reader is csv with "|" (quotes in a text are CSV-quoted); one speaker: id|text.
    with (out / "metadata.csv").open(encoding="utf-8", newline="") as fh:
        return {row[0]: row[1] for row in csv.reader(fh, delimiter="|")}


def _digest(out: Path) -> dict[str, str]:
    """Every output file (not the run's state folder) -> its content hash."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".voxmill" not in p.relative_to(out).parts
    }


def _segment_args(audiobook: Audiobook, out: Path) -> list[str]:
    return ["segment", str(audiobook.audio), "-o", str(out), "--text", str(BOOK), "--workers", "2"]


@pytest.fixture(scope="module")
def with_text(audiobook: Audiobook, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The audiobook segmented with its book, through the CLI (default bounds: 1-15 s)."""
    out = tmp_path_factory.mktemp("with-text") / "out"
    done = voxmill_cli(*_segment_args(audiobook, out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def without_text(audiobook: Audiobook, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SegmentResult]:
    """The audiobook segmented without its book, through the library entry point, with 2-8 s clips."""
    out = tmp_path_factory.mktemp("without-text") / "out"
    opts = SegmentOptions([audiobook.audio], out, min_seconds=2.0, max_seconds=8.0,
                          run=RunOptions(workers=2, progress=False))  # fmt: skip
    return out, voxmill.segment_recordings(opts)


# ---- text quality -------------------------------------------------------------------------------------


def test_with_text_kept_clips_carry_the_true_text_of_their_span(with_text: Path, audiobook: Audiobook) -> None:
    kept = _kept(with_text)
    assert len(kept) >= 25, f"only {len(kept)} clips kept of {len(_report(with_text))}"
    wrong = []
    for entry in kept:
        true = audiobook.true_text(entry["start"], entry["end"])
        if cer(entry["text"], true) > GOOD_CER:
            wrong.append(f"{entry['id']}: {entry['text']!r} != {true!r}")
    assert len(wrong) <= 0.05 * len(kept), "\n".join(wrong)


def test_with_text_the_dataset_holds_the_books_text(with_text: Path) -> None:
    kept = _kept(with_text)
    assert len(kept) >= 25, f"only {len(kept)} clips kept of {len(_report(with_text))}"
    for entry in _report(with_text):
        assert entry["status"] in ("ok", "dropped"), entry
        if entry["status"] == "ok":
            assert entry["cer"] is not None and entry["cer"] <= 0.1, entry  # ASR against the book, <= --max-cer
        else:
            assert entry["code"] and entry["reason"] and "\n" not in entry["reason"], entry
    # The dataset holds the report's text: the book's, with its punctuation and casing.
    metadata = _metadata(with_text)
    assert metadata == {file_name(e["id"]): e["text"] for e in kept}
    assert any('"' in text for text in metadata.values())  # the book's quotes survive Piper's csv


def _clip_of(entries: list[dict[str, Any]], sentence: dict[str, Any]) -> dict[str, Any] | None:
    middle = (sentence["start"] + sentence["end"]) / 2
    return next((e for e in entries if "start" in e and e["start"] <= middle <= e["end"]), None)


def test_the_neighbours_of_the_retake_and_the_skip_are_kept_and_exact(with_text: Path, audiobook: Audiobook) -> None:
    entries = _report(with_text)
    wrong = []  # every miss at once: one message tells the whole story
    for sentence in (s for s in audiobook.truth if s["paragraph"] in NEIGHBOURS):
        entry = _clip_of(entries, sentence)
        if entry is None:
            wrong.append(f"no clip holds {sentence['text']!r}")
            continue
        true = audiobook.true_text(entry["start"], entry["end"])
        if entry["status"] != "ok":
            wrong.append(f"{entry['id']} ({sentence['text']!r}) {entry['status']}: {entry.get('reason')}")
        elif cer(entry["text"], true) > GOOD_CER:
            wrong.append(f"{entry['id']}: {entry['text']!r} != {true!r}")
    assert not wrong, "\n".join(wrong)


def test_no_kept_clip_holds_the_skipped_paragraph(with_text: Path, audiobook: Audiobook) -> None:
    skipped = [normalize(s["text"]) for s in _truth_of_paragraph(BOOK, SKIP)]
    assert skipped and not any(s["paragraph"] == SKIP for s in audiobook.truth)
    for entry in _kept(with_text):
        assert not any(s in normalize(entry["text"]) for s in skipped), entry


def _truth_of_paragraph(book: Path, index: int) -> list[dict[str, Any]]:
    """The sentences of paragraph ``index`` as make_audiobook splits the book (with no audio)."""
    spec = importlib.util.spec_from_file_location("make_audiobook_text", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, sentences = module.paragraphs(book.read_text(encoding="utf-8"))[index]
    return [{"text": s} for s in sentences]


def test_without_text_clips_carry_the_recognized_text(without_text: tuple[Path, SegmentResult],
                                                      audiobook: Audiobook) -> None:  # fmt: skip
    out, _ = without_text
    kept = _kept(out)
    assert len(kept) >= 25
    metadata = _metadata(out)
    assert metadata == {file_name(e["id"]): e["asr_text"] for e in kept}
    assert all(e["text"] == e["asr_text"] and e["asr_text"].strip() and e["cer"] is None for e in kept)
    # The recognizer's text is the speech's, near enough (tiny.en on clean speech).
    cers = [cer(e["asr_text"], audiobook.true_text(e["start"], e["end"])) for e in kept]
    assert float(np.median(cers)) <= 0.1, cers


def test_the_library_entry_point_returns_a_segment_result(without_text: tuple[Path, SegmentResult]) -> None:
    out, result = without_text
    assert isinstance(result, SegmentResult) and result.out == out and result.exit_code == 0
    assert result.stats == json.loads((out / "stats.json").read_text(encoding="utf-8"))
    assert result.stats["kept"] == len(_kept(out)) and result.stats["failed_files"] == []
    assert 0.09 < result.stats["hours_in"] < 0.11 and 0 < result.stats["hours_kept"] <= result.stats["hours_in"]
    with pytest.raises(errors.ConfigError):
        voxmill.segment_recordings(SegmentOptions([out / "x.wav"], out / "never", max_seconds=0))
    assert not (out / "never").exists()


# ---- clips and dataset --------------------------------------------------------------------------------


@pytest.mark.parametrize(("which", "bounds"), [("with_text", (1.0, 15.0)), ("without_text", (2.0, 8.0))])
def test_every_kept_clip_is_within_the_bounds(which: str, bounds: tuple[float, float],
                                              request: pytest.FixtureRequest) -> None:  # fmt: skip
    value = request.getfixturevalue(which)
    out = value[0] if isinstance(value, tuple) else value
    low, high = bounds
    wavs = sorted((out / "wavs").glob("*.wav"))
    assert {w.stem for w in wavs} == set(_metadata(out))
    for wav in wavs:
        info = sf.info(str(wav))
        assert info.samplerate == 22050 and info.channels == 1
        assert low <= info.frames / info.samplerate <= high, (wav.name, info.duration)
    for entry in _report(out):
        if entry["status"] == "ok":
            assert low <= entry["duration"] <= high and entry["end"] - entry["start"] <= high + 0.01


@pytest.mark.parametrize("which", ["with_text", "without_text"])
def test_the_output_passes_voxmill_check(which: str, request: pytest.FixtureRequest) -> None:
    value = request.getfixturevalue(which)
    out = value[0] if isinstance(value, tuple) else value
    done = voxmill_cli("check", str(out), "--json")
    assert json.loads(done.stdout)["verdict"] == "READY", done.stdout
    assert done.returncode == 0, done.stderr


# ---- kill, resume, rerun ------------------------------------------------------------------------------


def _finished_windows(journal: Path) -> int:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=0.2) as db:
            return int(db.execute("SELECT COUNT(*) FROM records WHERE status = 'ok'").fetchone()[0])
    except sqlite3.Error:  # not created yet, or caught mid-write
        return 0


def test_kill_9_then_resume_gives_the_uninterrupted_bytes(with_text: Path, audiobook: Audiobook,
                                                          tmp_path: Path) -> None:  # fmt: skip
    out = tmp_path / "out"  # the same folder name as the uninterrupted run's: config.json names it
    args = [sys.executable, "-m", "voxmill", "--quiet", *_segment_args(audiobook, out)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    journal = out / ".voxmill" / "journal.db"
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and _finished_windows(journal) < 2:
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the workers too
        _, stderr = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed: {stderr}"
    assert not (out / "stats.json").exists() and _finished_windows(journal) >= 2

    resumed = voxmill_cli(*_segment_args(audiobook, out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    expected = _digest(with_text)
    assert {"metadata.csv", "report.jsonl", "stats.json", "config.json"} <= set(expected)
    assert sum(name.startswith("wavs/") for name in expected) == len(_kept(with_text))
    assert _digest(out) == expected


def test_a_rerun_on_the_folder_without_resume_or_overwrite_is_refused(with_text: Path, audiobook: Audiobook) -> None:
    before = _digest(with_text)
    done = voxmill_cli(*_segment_args(audiobook, with_text))
    assert done.returncode == 2 and "--resume" in done.stderr and "--overwrite" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert _digest(with_text) == before


# ---- hostile inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mixed:
    src: Path
    out: Path
    done: subprocess.CompletedProcess[str]
    inputs: dict[str, Path]  # the clip-id prefix each input should get -> the input


@pytest.fixture(scope="module")
def mixed(audiobook: Audiobook, tmp_path_factory: pytest.TempPathFactory) -> Mixed:
    """Short stretches of the book as `книга 1.wav` and two `part.wav` in different folders, plus a
    garbage .wav; the output inside the first input's folder; a Russian speaker name."""
    root = tmp_path_factory.mktemp("mixed")
    samples, sr = sf.read(str(audiobook.audio), dtype="float32")
    truth = audiobook.truth

    def cut(first: int, last: int, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        lo, hi = int((truth[first]["start"] - 0.4) * sr), int((truth[last]["end"] + 0.4) * sr)
        sf.write(str(path), samples[lo:hi], sr, subtype="PCM_16")
        return path

    inputs = {
        "книга 1": cut(2, 3, root / "src" / "книга 1.wav"),
        "part": cut(4, 4, root / "a" / "part.wav"),
        "part-2": cut(16, 16, root / "b" / "part.wav"),
    }
    garbage = root / "src" / "garbage.wav"
    garbage.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + np.random.default_rng(0).bytes(4000))
    out = root / "src" / "dataset"
    done = voxmill_cli("segment", *map(str, inputs.values()), str(garbage), "-o", str(out), "--speaker",
                       "Анна Каренина", "-f", "piper", "-f", "nemo", "--workers", "2")  # fmt: skip
    return Mixed(root / "src", out, done, {**inputs, "garbage": garbage})


def test_non_ascii_names_and_same_stems_get_distinct_ids(mixed: Mixed) -> None:
    report = _report(mixed.out)
    ids = [e["id"] for e in report]
    assert len(ids) == len(set(ids))
    by_source = {e["source"]: e["id"].rsplit("_", 1)[0] for e in report if "start" in e}
    assert by_source == {str(path): prefix for prefix, path in mixed.inputs.items() if prefix != "garbage"}
    metadata = _metadata(mixed.out)
    assert {file_name(e["id"]) for e in report if e["status"] == "ok"} == set(metadata)
    for clip_id in metadata:
        assert (mixed.out / "wavs" / f"{clip_id}.wav").is_file()
    manifest = [json.loads(line) for line in (mixed.out / "manifest_train.jsonl").read_text("utf-8").splitlines()]
    manifest += [json.loads(line) for line in (mixed.out / "manifest_val.jsonl").read_text("utf-8").splitlines()]
    assert len(manifest) == len(metadata) and {m["speaker"] for m in manifest} == {"Анна Каренина"}


def test_a_garbage_input_is_reported_failed_and_the_others_are_written(mixed: Mixed) -> None:
    assert mixed.done.returncode == 1, mixed.done.stderr
    assert "Traceback" not in mixed.done.stderr and "garbage.wav" in mixed.done.stderr
    garbage = str(mixed.inputs["garbage"])
    (failed,) = [e for e in _report(mixed.out) if e["status"] == "failed"]
    assert failed["source"] == garbage and failed["reason"] and "\n" not in failed["reason"]
    stats = json.loads((mixed.out / "stats.json").read_text(encoding="utf-8"))
    assert stats["failed_files"] == [garbage] and stats["counts"]["failed"] == 1
    assert stats["kept"] >= 3 and stats["inputs"] == [str(p) for p in mixed.inputs.values()]
    kept_sources = {e["source"] for e in _kept(mixed.out)}
    assert kept_sources == {str(p) for k, p in mixed.inputs.items() if k != "garbage"}
    assert sorted(p.name for p in mixed.src.iterdir()) == ["dataset", "garbage.wav", "книга 1.wav"]


def test_a_failed_input_is_reported_with_a_reason_code(mixed: Mixed) -> None:
    (failed,) = [e for e in _report(mixed.out) if e["status"] == "failed"]
    assert failed["code"] in {r.value for r in errors.Reason}, failed
    stats = json.loads((mixed.out / "stats.json").read_text(encoding="utf-8"))
    assert set(stats["drop_reasons"]) <= {r.value for r in errors.Reason} | {"not in text", "high CER"}, stats


@pytest.fixture(scope="module")
def short_input(audiobook: Audiobook, tmp_path_factory: pytest.TempPathFactory) -> Path:
    samples, sr = sf.read(str(audiobook.audio), dtype="float32", frames=12 * 22050)
    path = tmp_path_factory.mktemp("short") / "in" / "short.wav"
    path.parent.mkdir()
    sf.write(str(path), samples, sr, subtype="PCM_16")
    return path


def test_an_output_folder_holding_an_input_is_refused(short_input: Path, tmp_path: Path) -> None:
    before = sorted(short_input.parent.iterdir())
    done = voxmill_cli("segment", str(short_input), "-o", str(short_input.parent))
    assert done.returncode == 2 and "input" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert sorted(short_input.parent.iterdir()) == before
    nested = tmp_path / "out" / "deep" / "er" / "book.wav"  # an input anywhere under OUT
    nested.parent.mkdir(parents=True)
    shutil.copy(short_input, nested)
    done = voxmill_cli("segment", str(nested), "-o", str(tmp_path / "out"))
    assert done.returncode == 2 and "input" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert [p.relative_to(tmp_path) for p in sorted(tmp_path.rglob("*"))] == [
        Path("out"), Path("out/deep"), Path("out/deep/er"), Path("out/deep/er/book.wav")
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--max-seconds", "0"], "--max-seconds"),
        (["--min-seconds", "5", "--max-seconds", "3"], "--max-seconds"),
        (["--min-seconds", "-1"], "--min-seconds"),
        (["--max-cer", "-1"], "--max-cer"),
        (["--max-cer", "nan"], "--max-cer"),
        (["--min-seconds", "nan"], "--min-seconds"),
        (["--max-seconds", "inf"], "--max-seconds"),
    ],
)
def test_absurd_options_are_usage_errors(flags: list[str], named: str, short_input: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = voxmill_cli("segment", str(short_input), "-o", str(out), *flags)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not out.exists()


@pytest.mark.parametrize("content", ["", "  \n\n\t\n"])
def test_an_empty_book_is_refused_before_the_output_exists(content: str, short_input: Path, tmp_path: Path) -> None:
    book = tmp_path / "книга.md"
    book.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    done = voxmill_cli("segment", str(short_input), "-o", str(out), "--text", str(book))
    assert done.returncode == 2 and "книга.md" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not out.exists()
    with pytest.raises(errors.DatasetError):
        voxmill.segment_recordings(SegmentOptions([short_input], out, text=book))
    assert not out.exists()


# ---- memory --------------------------------------------------------------------------------------------

_PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"  # KiB: the largest of voxmill and its workers
    "sys.exit(code)\n"
)


def _long_recording(audiobook: Audiobook, path: Path, minutes: float) -> None:
    """The audiobook once, then quiet noise up to ``minutes``: written a 30-s block at a time."""
    info = sf.info(str(audiobook.audio))
    sr, block = info.samplerate, 30 * info.samplerate
    rng = np.random.default_rng(1)
    with sf.SoundFile(str(path), "w", sr, 1, subtype="PCM_16") as sink:
        for piece in sf.blocks(str(audiobook.audio), blocksize=block, dtype="float32"):
            sink.write(piece)
        left = int(minutes * 60 * sr) - info.frames
        while left > 0:
            count = min(block, left)
            sink.write((rng.standard_normal(count) * 10 ** (-50 / 20)).astype(np.float32))
            left -= count


def _peak_kib(recording: Path, out: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-m", "voxmill", "--quiet", "segment", str(recording), "-o",
         str(out), "--workers", "2"],
        capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_a_two_hour_recording_keeps_the_peak_memory_flat(audiobook: Audiobook, tmp_path: Path) -> None:
    peaks = {}
    for minutes in (10, 120):
        recording = tmp_path / f"{minutes}min.wav"
        _long_recording(audiobook, recording, minutes)
        start = time.monotonic()
        peaks[minutes] = _peak_kib(recording, tmp_path / f"out-{minutes}")
        print(f"{minutes} min: peak RSS {peaks[minutes] / 1024:.0f} MiB in {time.monotonic() - start:.0f} s")
        stats = json.loads((tmp_path / f"out-{minutes}" / "stats.json").read_text(encoding="utf-8"))
        assert stats["hours_in"] == pytest.approx(minutes / 60, abs=0.01) and stats["kept"] >= 25
        recording.unlink()
    message = f"peak RSS: {peaks[10] // 1024} MiB for 10 min, {peaks[120] // 1024} MiB for 2 hours"
    assert peaks[120] <= peaks[10] + 100 * 1024, message
