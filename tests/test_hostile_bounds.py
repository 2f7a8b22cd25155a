"""Memory and workers bounded whatever the input: huge texts, absurd rates, absurd worker counts."""

from __future__ import annotations


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
