"""Tasks for the engine tests; a module of their own so spawned workers can import them.

Run as a script it is the 'user program' the kill/Ctrl-C tests start and interrupt:
    python engine_tasks.py JOURNAL LOG COUNT SECONDS
prints one line per outcome as it is yielded and exits 130 on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxmill.engine import Drop, Pool, Task, WorkerContext
from voxmill.engine.journal import Journal
from voxmill.engine.sharing import SharedArray, share


def _log(path: str | None, text: str) -> None:
    if path:
        with open(path, "a") as fh:  # O_APPEND: one short line per write, safe across processes
            fh.write(text + "\n")


@dataclass
class Square(Task):
    """Squares ints; sleeps ``delay[x]`` seconds; drops 'drop', fails 'fail'; logs every run."""

    delay: dict[int, float] | None = None
    log: str | None = None

    def __call__(self, item: Any) -> Any:
        _log(self.log, f"{item} {os.getpid()}")
        if item == "drop":
            raise Drop("asked to drop")
        if item == "fail":
            raise ValueError("asked to fail")
        time.sleep((self.delay or {}).get(item, 0.0))
        return item * item


@dataclass
class KillOnce(Task):
    """SIGKILLs its own worker on ``victim``: once if ``marker`` is set (it then exists), else always."""

    victim: int
    log: str
    marker: str | None = None

    def __call__(self, item: int) -> int:
        _log(self.log, str(item))
        if item == self.victim and (self.marker is None or not Path(self.marker).exists()):
            if self.marker:
                Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.02)
        return item + 1000


@dataclass
class Exit(Task):
    """Leaves with os._exit on item 2: a crash that is not a signal."""

    def __call__(self, item: int) -> int:
        if item == 2:
            os._exit(3)
        return item


@dataclass
class Env(Task):
    """Reports the worker's thread budget, as the environment and the context give it."""

    def setup(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def __call__(self, item: int) -> tuple[str | None, int, int]:
        return os.environ.get("OMP_NUM_THREADS"), self.ctx.threads, self.ctx.index


@dataclass
class DieInSetup(Task):
    """The worker process ends inside setup, before it is ready: every respawn would do the same."""

    def setup(self, ctx: WorkerContext) -> None:
        os._exit(7)

    def __call__(self, item: int) -> int:
        return item


@dataclass
class BrokenSetup(Task):
    def setup(self, ctx: WorkerContext) -> None:
        raise RuntimeError("model file missing")

    def __call__(self, item: int) -> int:
        return item


@dataclass
class Louder(Task):
    """Doubles a shared array in a worker and hands the result back by reference."""

    def __call__(self, ref: SharedArray) -> SharedArray:
        data = ref.take()
        return share(data * 2)


@dataclass
class SlowShare(Task):
    """Shares a fresh array after ``delay`` seconds: results a cancelled run leaves in /dev/shm."""

    delay: float = 0.3

    def __call__(self, item: int) -> SharedArray:
        time.sleep(self.delay)
        return share(np.full(1000, item, np.float32))


@dataclass
class Audio(Task):
    """Returns an object carrying audio seconds, for the throughput figure."""

    def __call__(self, item: int) -> Any:
        return type("R", (), {"audio_seconds": 2.5})()


def _main(journal_path: str, log: str, count: int, seconds: float) -> int:
    task = Square(delay=dict.fromkeys(range(count), seconds), log=log)
    try:
        with Journal(journal_path) as journal:
            for outcome in Pool(workers=2, progress=False).imap(task, range(count), journal=journal):
                print(f"{outcome.index} {outcome.value} {int(outcome.resumed)}", flush=True)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(_main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))


@dataclass
class Speak(Task):
    """Leases the bundled voice from the worker's model manager and reports that manager's budget."""

    def setup(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def __call__(self, text: str) -> tuple[int, int | None, int]:
        with self.ctx.models.lease("piper:en_US-joe-medium") as voice:
            samples = sum(chunk.audio_int16_array.shape[0] for chunk in voice.synthesize(text))
        return samples, self.ctx.models.budget_bytes, len(self.ctx.models.status())


@dataclass
class Echo(Task):
    """Returns its item: a large item makes an equally large result."""

    def __call__(self, item: Any) -> Any:
        return item


def cube(item: int) -> int:
    """A plain function: the engine runs any picklable callable, not only a Task."""
    return item**3


def scaled(factor: int, item: int) -> int:
    """Run through ``functools.partial(scaled, factor)``."""
    return factor * item


@dataclass
class NeedsExtra(Task):
    """Its preflight finds an extra missing; ``calls`` counts preflights (in the parent)."""

    calls: list[int]
    log: str | None = None

    def preflight(self) -> None:
        from voxmill.errors import MissingExtraError

        self.calls.append(1)
        raise MissingExtraError("pyworld", "convert")

    def __call__(self, item: int) -> int:
        _log(self.log, str(item))
        return item


@dataclass
class Models(Task):
    """Reports which model manager its worker's context holds, from which thread, and its budget."""

    delay: float = 0.2

    def setup(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def __call__(self, item: int) -> tuple[int, int, int, int | None]:
        import threading

        time.sleep(self.delay)  # long enough that every worker takes an item
        models = self.ctx.models
        return os.getpid(), threading.get_ident(), id(models), models.budget_bytes
