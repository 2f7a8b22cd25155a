"""Run a command and measure it the way a user feels it: wall time and peak RSS of the whole process tree.

``resource.ru_maxrss`` would be wrong for this: Linux carries it across fork and exec (a child
started by a big parent reports the parent's size), and it gives the largest process, not the sum
of a parent and its workers at the same moment. So the tree is sampled every 20 ms with psutil.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable

import psutil


def tree_rss(root: psutil.Process) -> int:
    """Bytes resident in ``root`` and all its descendants now."""
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
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


class MeasuredServer:
    """A server process started with ``command``, waited for until ``ready()`` says True (it returns False
    while the server cannot answer yet), its tree's peak RSS sampled every 20 ms from start to :meth:`stop`."""

    def __init__(self, name: str, command: list[str], ready: Callable[[], bool], env: dict[str, str]) -> None:
        self.name = name
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; read on failure
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=self.log, env=env)
        self.root = psutil.Process(self.proc.pid)
        self.peak = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        deadline = time.monotonic() + 120
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                self.log.seek(0)
                raise RuntimeError(f"{name} did not start:\n{self.log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.root))
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._sampler.join()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
