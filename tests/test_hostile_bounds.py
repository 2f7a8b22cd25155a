"""Memory and workers bounded whatever the input: huge texts, absurd rates, absurd worker counts."""

from __future__ import annotations

import pytest


def _spawned_workers(pid: int) -> int:
    """Worker processes (multiprocessing spawn children) under ``pid`` right now."""
    import contextlib

    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return 0
    count = 0
    for child in children:
        with contextlib.suppress(psutil.Error):  # it may end while we look
            count += "spawn_main" in " ".join(child.cmdline())
    return count


def test_engine_workers_capped_by_items_and_cores(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    """``--workers 10000`` once started 510 processes (10 GB) for 32 items and never finished."""
    import subprocess
    import sys
    import time

    from hostile import ljspeech
    from voxmill.engine import usable_cores
    from voxmill.engine.threads import WORKERS_PER_CORE

    items = 12
    ljspeech(tmp_path / "src", [(f"c{i:02d}", f"Clip number {i}.") for i in range(items)], short_speech)
    cap = min(items, WORKERS_PER_CORE * usable_cores())
    args = [sys.executable, "-m", "voxmill", "--quiet", "prepare", str(tmp_path / "src"), "-o", str(tmp_path / "out")]
    proc = subprocess.Popen([*args, "--workers", "10000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    deadline = time.monotonic() + 300
    while proc.poll() is None and peak <= cap and time.monotonic() < deadline:
        peak = max(peak, _spawned_workers(proc.pid))
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()  # over the cap (or hung): no need to watch hundreds of interpreters start
    _, err = proc.communicate()
    assert peak <= cap, f"{peak} worker processes for {items} items on {usable_cores()} cores (cap {cap})"
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert len((tmp_path / "out" / "metadata.csv").read_text().splitlines()) == items


def test_engine_ctrl_c_while_workers_start_is_quiet(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C (SIGINT to the terminal's whole process group) while workers import: exit 130, one line,
    no KeyboardInterrupt traceback from each child."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from hostile import ljspeech

    ljspeech(tmp_path / "src", [(f"c{i:02d}", f"Clip number {i}.") for i in range(8)], short_speech)
    args = [sys.executable, "-m", "voxmill", "--quiet", "prepare", str(tmp_path / "src"), "-o", str(tmp_path / "out")]
    proc = subprocess.Popen([*args, "--workers", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while proc.poll() is None and _spawned_workers(proc.pid) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the workers are importing numpy and voxmill now (a second or more)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
    assert proc.returncode == 130, (proc.returncode, err[-2000:])
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-3000:]


def _convert_wav_at_rate(path, samples, rate) -> None:  # type: ignore[no-untyped-def]
    """A 16-bit wav whose header says ``rate`` Hz, whatever the samples were made at (libsndfile
    writes any rate up to 2^31 - 1 into the header; the samples are real speech)."""
    import struct

    import soundfile as sf

    sf.write(path, samples, 22050, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 24, rate)  # fmt chunk: sample rate at byte 24 of a canonical header
    struct.pack_into("<I", data, 28, rate * 2)  # byte rate
    path.write_bytes(bytes(data))


def test_convert_info_refuse_absurd_rates_per_file(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    import json

    from hostile import no_traceback, voxmill
    from voxmill.audio import save

    good = save(tmp_path / "good.wav", short_speech)
    bad = {rate: tmp_path / f"rate{rate}.wav" for rate in (1, 8, 2147483647)}
    for rate, path in bad.items():
        _convert_wav_at_rate(path, short_speech.samples[:4000], rate)
    done = voxmill("info", str(bad[8]), str(good), str(bad[1]), str(bad[2147483647]), "--json", timeout=60)
    no_traceback(done)
    assert done.returncode == 1, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["path"] for r in rows] == [str(bad[8]), str(good), str(bad[1]), str(bad[2147483647])]
    assert rows[1]["sample_rate"] == short_speech.sample_rate and rows[1]["lufs"] is not None  # the good one
    for rate, row in zip((8, 1, 2147483647), (rows[0], rows[2], rows[3]), strict=True):
        assert f"{rate} Hz" in row["error"]
    assert len(done.stderr.strip().splitlines()) == 3, done.stderr
    # convert refuses such a file at once (exit 2, one line), instead of minutes of work and a silent output.
    out = tmp_path / "out.wav"
    done = voxmill("convert", str(bad[2147483647]), str(out), "-p", "loudness", timeout=60)
    no_traceback(done)
    assert done.returncode == 2 and "2147483647 Hz" in done.stderr and not out.exists(), done.stderr


_RSS_PROBE = r"""
import resource, subprocess, sys
done = subprocess.run([sys.executable, "-m", "voxmill", "--quiet", *sys.argv[1:]], capture_output=True, text=True)
sys.stdout.write(done.stdout)
sys.stderr.write(done.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)  # KiB on Linux
sys.exit(done.returncode)
"""


def test_convert_info_two_hour_file_in_bounded_memory(tmp_path, speech) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    from voxmill.audio import resample

    # Two hours of real speech at 8 kHz (115 MB of 16-bit samples, 230 MB as float32), written in blocks.
    rate, seconds = 8000, 2 * 3600
    block = np.tile(resample(speech.samples, speech.sample_rate, rate), 20)
    path = tmp_path / "two-hours.wav"
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as out:
        written = 0
        while written < rate * seconds:
            part = block[: rate * seconds - written]
            out.write(part)
            written += part.shape[0]
    # A fresh process between pytest and voxmill: RUSAGE_CHILDREN then covers voxmill alone.
    done = subprocess.run([sys.executable, "-c", _RSS_PROBE, "info", str(path), "--json", "--no-vad"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stderr.strip().splitlines()[-1]) / 1024
    row = json.loads(done.stdout)
    assert row["duration"] == seconds and -40 < row["lufs"] < -15
    assert peak_mb < 150, f"voxmill info held {peak_mb:.0f} MB for a file of 230 MB decoded"


def test_synth_long_unbroken_word_in_bounded_memory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A 12,000-letter word (no space, no punctuation) is cut before phonemizing and its phonemes are cut
    before the voice: the synth process stays far under 1 GiB (uncut, ~2,500 phonemes in one go took
    1.9 GiB; 50,000 letters 18.9 GB). --max-chars 5000 makes each piece longer than the phoneme bound, so
    both cuts are exercised; --length-scale 0.2 keeps the audio, and the test, short."""
    import subprocess
    import sys

    import soundfile as sf

    text = tmp_path / "word.txt"
    text.write_text("a" * 12_000 + "\n", encoding="utf-8")
    out = tmp_path / "word.wav"
    # A parent of its own, so RUSAGE_CHILDREN is this synth's peak alone; its address space is capped so a
    # regression fails here instead of taking the machine's memory.
    wrapper = (
        "import resource, subprocess, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(done.stderr)\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    args = ["synth", "-i", str(text), "-o", str(out), "--max-chars", "5000", "--length-scale", "0.2"]
    done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "voxmill", "--quiet", *args],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    code, peak_kib = (int(v) for v in done.stdout.split())
    assert code == 0, done.stderr[-2000:]
    assert peak_kib < 1024 * 1024, f"peak RSS {peak_kib // 1024} MiB"
    info = sf.info(str(out))
    assert info.frames / info.samplerate > 20  # the whole word was spoken, not dropped


def test_attack_prepare_metadata_line_of_10_mb_fails_its_row_without_hanging(tmp_path, short_speech):
    import json

    from hostile import ljspeech, no_traceback, voxmill

    src = ljspeech(tmp_path / "src", [("ok", "Some words.")], short_speech)
    with (src / "metadata.csv").open("a") as fh:
        fh.write("big|" + "word " * 2_000_000 + "\n")  # before: the item and its result deadlocked the pipe
        fh.write("x" * 10_000_000 + "\n")
    (src / "wavs" / "big.wav").write_bytes((src / "wavs" / "ok.wav").read_bytes())
    done = voxmill("prepare", str(src), "-o", str(tmp_path / "out"), "--workers", "2", timeout=60)
    no_traceback(done)
    assert done.returncode == 1, done.stderr
    report = [json.loads(x) for x in (tmp_path / "out" / "report.jsonl").read_text().splitlines()]
    assert [(e["status"], e.get("code")) for e in report] == [
        ("ok", None), ("failed", "line or transcript too long"), ("failed", "line or transcript too long")
    ]  # fmt: skip


def test_attack_prepare_row_report_holds_no_memory_per_row(tmp_path):
    import tracemalloc

    from voxmill.engine.report import RowReport

    entry = {"source": str(tmp_path / "metadata.csv"), "status": "failed", "code": "audio file not found",
             "reason": "audio file not found for id 'x' (looked in " + str(tmp_path) + ")"}  # fmt: skip
    with RowReport(tmp_path / "partial.jsonl") as report:
        tracemalloc.start()
        for i in range(1000):
            report.add({"id": f"row{i}", **entry})
        small = tracemalloc.get_traced_memory()[0]
        for i in range(1000, 30_000):
            report.add({"id": f"row{i}", **entry})
        large = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    assert large - small < 200_000, (small, large)  # a list of entries held ~30 MB here
    report.write(tmp_path / "report.jsonl", set(), "", "")
    assert report.rows == 30_000 and report.counts() == {"failed": 30_000}
    assert sum(1 for _ in (tmp_path / "report.jsonl").open()) == 30_000


@pytest.mark.timeout(120)
def test_engine_large_items_with_large_results_never_deadlock() -> None:
    """A worker sending a large result while the parent sends it a large prefetched item: before, both
    waited on each other's full pipe forever (a 10 MB metadata line hung prepare)."""
    import engine_tasks as tasks
    from voxmill.engine import Ok, Pool

    items = [bytes([i]) * (4 << 20) for i in range(6)]
    outcomes = list(Pool(workers=1, backend="process", prefetch=2, progress=False).imap(tasks.Echo(), items))
    assert [o.result == Ok(item) for o, item in zip(outcomes, items, strict=True)] == [True] * 6


def test_attack_synth_input_from_an_endless_device_is_refused_quickly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from hostile import no_traceback, voxmill

    for device, words in (("/dev/urandom", "not UTF-8"), ("/dev/zero", "MB of text")):
        try:
            proc = voxmill("synth", "-i", device, "-o", str(tmp_path / "x.wav"), timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"synth -i {device} did not stop") from None
        no_traceback(proc)
        assert proc.returncode == 2 and words in proc.stderr, (device, proc.stderr)
    assert not (tmp_path / "x.wav").exists()


def test_attack_info_on_a_fifo_says_so_and_reports_the_good_file(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    import os

    from hostile import no_traceback, voxmill
    from voxmill.audio import save

    good = save(tmp_path / "good.wav", short_speech)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    proc = voxmill("info", str(fifo), str(good), timeout=30)
    no_traceback(proc)
    assert proc.returncode == 1
    assert "not a regular file" in proc.stderr + proc.stdout
    assert "good.wav" in proc.stdout
