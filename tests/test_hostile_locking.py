"""Two runs on one output: the second exits 2 naming the first; the first is not disturbed."""

from __future__ import annotations


def test_convert_second_run_on_one_output_exits_2_naming_the_first(tmp_path, speech) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    import time

    import numpy as np

    from hostile import no_traceback, voxmill
    from voxmill.audio import Audio, save

    source = save(tmp_path / "long.wav", Audio(np.tile(speech.samples, 4), speech.sample_rate))
    out = tmp_path / "out" / "changed.wav"
    args = ["convert", str(source), str(out), "-p", "pitch", "--semitones", "3", "--no-parallel"]
    args += ["--chunk-seconds", "4"]
    first = subprocess.Popen([sys.executable, "-m", "voxmill", "--quiet", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not list(out.parent.glob(".changed.*.tmp.wav")):  # the first is writing
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = voxmill("convert", str(source), str(out), "-p", "loudness")
        still_running = first.poll() is None
    finally:
        first.kill()
        first.communicate()
    assert still_running  # the second really ran while the first was writing
    no_traceback(second)
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"pid {first.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1, second.stderr


def test_prepare_second_run_on_one_output_exits_2_naming_the_first(tmp_path, speech, short_speech):
    import json
    import subprocess
    import sys
    import time
    from concurrent.futures import ThreadPoolExecutor

    import soundfile as sf

    from hostile import ljspeech, no_traceback, voxmill

    # 24 clips of 15 s: a run of several seconds, long enough for three others to try meanwhile.
    src = ljspeech(tmp_path / "src", [(f"c{i:02d}", f"Clip number {i}.") for i in range(24)], speech)
    other = ljspeech(tmp_path / "other", [("x1", "Another corpus.")], short_speech)
    out = tmp_path / "out"
    first = subprocess.Popen(
        [sys.executable, "-m", "voxmill", "--quiet", "prepare", str(src), "-o", str(out), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lock = out / ".voxmill" / "lock"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (lock.exists() and lock.stat().st_size):
        time.sleep(0.02)
    try:
        with ThreadPoolExecutor(3) as pool:  # the others start together, while the first one runs
            attempts = [["--workers", "1", *extra] for extra in ([], ["--resume"], ["--overwrite"])]
            others = list(pool.map(lambda a: voxmill("prepare", str(other), "-o", str(out), *a), attempts))
        still_running = first.poll() is None
    finally:
        stderr = first.communicate(timeout=300)[1]
    for second in others:
        no_traceback(second)
        assert second.returncode == 2, second.stderr
        assert "another voxmill run" in second.stderr and f"pid {first.pid}" in second.stderr, second.stderr
    assert still_running, "the first run should outlast the others"
    assert first.returncode == 0, stderr  # the first run was not disturbed
    report = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert len(report) == 24 and all(r["status"] == "ok" for r in report)
    for line in (out / "metadata.csv").read_text().splitlines():
        assert sf.info(out / "wavs" / f"{line.split('|')[0]}.wav").frames > 0
    assert not lock.exists()


def test_synth_second_run_on_one_file_exits_2_and_the_first_finishes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    import time

    import soundfile as sf

    from hostile import no_traceback, voxmill

    sentence = "The wheel turned slowly and the water ran over the old stones of the mill. "
    book = tmp_path / "book.txt"
    book.write_text("\n\n".join(sentence * 3 for _ in range(6)), encoding="utf-8")
    out = tmp_path / "same.wav"
    args = ["synth", "-i", str(book), "-o", str(out), "--workers", "1", "--noise-scale", "0", "--noise-w", "0"]
    first = subprocess.Popen([sys.executable, "-m", "voxmill", "--quiet", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        parts = tmp_path / ".same.wav.parts"
        deadline = time.monotonic() + 60
        while not (parts.is_dir() and any(parts.iterdir())):  # the first is speaking
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.02)
        second = voxmill(*args)
        still_running = first.poll() is None
        _, first_err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert still_running  # the second really ran while the first was speaking
    no_traceback(second)
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"pid {first.pid}" in second.stderr and len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert first.returncode == 0, first_err
    assert sf.info(str(out)).duration > 30  # the first run's whole text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["book.txt", "same.wav"]  # no parts, lock or temp left


def test_attack_convert_an_output_held_by_another_run_fails_only_that_input(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    from hostile import no_traceback, voxmill
    from voxmill.audio import save
    from voxmill.engine.outputs import OutputFile

    first = save(tmp_path / "in" / "a.wav", short_speech)
    second = save(tmp_path / "in" / "b.wav", short_speech)
    out = tmp_path / "out"
    out.mkdir()
    with OutputFile(out / "a.wav", inputs=[first]):  # another (live) run is writing out/a.wav
        proc = voxmill("convert", str(first), str(second), str(out), "-p", "loudness", "--no-parallel")
    no_traceback(proc)
    assert proc.returncode == 2
    assert "a.wav" in proc.stderr and "another voxmill run" in proc.stderr
    assert (out / "b.wav").is_file()  # the input after the held one is still converted
