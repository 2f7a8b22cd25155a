"""Run a command and measure it the way a user feels it: wall time and peak RSS of the whole process tree.

``resource.ru_maxrss`` would be wrong for this: Linux carries it across fork and exec (a child
started by a big parent reports the parent's size), and it gives the largest process, not the sum
of a parent and its workers at the same moment. ``run_measured`` samples the tree's summed RSS every
20 ms with psutil; ``run_timed`` reads each process's own peak (VmHWM) every 0.2 s, which is exact for
one process and takes far less CPU from what it measures, and adds the CPU seconds the command used.
"""

from __future__ import annotations

import compileall
import contextlib
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil


def compile_sources(package: ModuleType) -> None:
    """Bytecode beside ``package``'s modules, as pip writes it when it installs a wheel. The venv's voxmill
    is an editable install: under PYTHONDONTWRITEBYTECODE=1 (this machine's environment sets it) each run
    would compile its ~180 modules again, 0.15 s of every CLI start that no installed peer pays."""
    compileall.compile_dir(str(Path(str(package.__file__)).parent), quiet=1)


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


def tree_cpu(root: psutil.Process) -> float:
    """CPU seconds (user + system) used so far by ``root`` and its live descendants."""
    total = 0.0
    for process in _tree(root):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def tree_peak(root: psutil.Process) -> int:
    """Bytes: the sum, over ``root`` and its live descendants, of each one's own peak RSS so far (the
    kernel's VmHWM). Exact for one process whatever the sampling interval (a 20-ms sampler can miss a
    peak and, on a busy 2-core machine, takes CPU from what it measures); for several, an upper bound of
    their peak together. A descendant that has exited is counted only if it was seen alive."""
    total = 0
    for process in _tree(root):
        with contextlib.suppress(OSError, ValueError), open(f"/proc/{process.pid}/status") as status:
            total += next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")), 0)
    return total


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds
    cpu: float  # CPU seconds (user + system) of the command and the descendants it waited for
    peak_mib: float
    stdout: str


def run_measured(command: list[str], timeout: float = 3600) -> tuple[float, float, str]:
    """(wall seconds, peak tree RSS in MiB, stdout); RuntimeError with stderr's tail if it fails.
    The tree's RSS summed every 20 ms (several processes at once: the peak of their sum)."""
    done = run_timed(command, timeout, sampler=tree_rss, interval=0.02)
    return done.wall, done.peak_mib, done.stdout


def run_timed(command: list[str], timeout: float = 3600, sampler: Any = tree_peak, interval: float = 0.2) -> Measured:
    """``command`` run to the end: wall, CPU seconds, peak RSS (by default each process's own peak, read
    every 0.2 s: exact for one process, and light on the CPU it measures) and stdout; RuntimeError with
    stderr's tail if it fails."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        root, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            peak = max(peak, sampler(root))
            if time.perf_counter() - start > timeout:
                proc.kill()
            time.sleep(interval)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        stdout.seek(0)
        stderr.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(command[:4])} failed ({proc.returncode}):\n{stderr.read()[-3000:]}")
        return Measured(wall, cpu, peak / 2**20, stdout.read())
