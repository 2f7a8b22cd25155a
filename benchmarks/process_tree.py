"""Run a command and measure it the way a user feels it: wall time and peak RSS of the whole process tree.

``resource.ru_maxrss`` would be wrong for this: Linux carries it across fork and exec (a child
started by a big parent reports the parent's size), and it gives the largest process, not the sum
of a parent and its workers at the same moment. So the tree is sampled every 20 ms with psutil.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time

import psutil


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(root: psutil.Process) -> int:
    """Bytes resident in ``root`` and all its descendants now."""
    total = 0
    for process in _tree(root):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total


def tree_peak(root: psutil.Process) -> int:
    """Bytes: the sum, over ``root`` and its live descendants, of each one's own peak RSS so far (the
    kernel's VmHWM). Exact for one process whatever the sampling interval (a 20-ms sampler can miss a
    peak and, on a busy 2-core machine, takes CPU from what it measures); for several, an upper bound of
    their peak together. A descendant that has exited is counted only if it was seen alive."""
    total = 0
    for process in _tree(root):
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{process.pid}/status") as status:
            total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    return total


def run_measured(command: list[str], timeout: float = 3600) -> tuple[float, float, str]:
    """(wall seconds, peak tree RSS in MiB, stdout); RuntimeError with stderr's tail if it fails."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        root, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            peak = max(peak, tree_rss(root))
            if time.perf_counter() - start > timeout:
                proc.kill()
            time.sleep(0.02)
        wall = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:4])} failed ({proc.returncode}):\n{stderr.read()[-3000:]}")
        return wall, peak / 2**20, stdout.read()
