"""The backend interface the Pool drives, and the per-item runner every backend shares.

A backend receives :class:`Job`s (sequence number + item), runs them with its workers and hands back
:class:`JobResult`s in any order. Ordering, windowing, journaling and progress live in the Pool, so a
new backend (Ray, a cluster) only has to move jobs to workers and results back. Backends whose
workers are other processes share one state machine (:mod:`.remote`); the factory is in the package.
"""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voxmill.engine import sharing
from voxmill.engine.outcome import Drop, Dropped, Failed, Ok, Result, exception_text
from voxmill.engine.task import ModelSlot, Task, WorkerContext
from voxmill.engine.threads import ThreadPlan
from voxmill.errors import Reason

__all__ = ["Backend", "Job", "JobResult", "TaskHost", "run_job", "timeout_failure"]


@dataclass(frozen=True)
class Job:
    seq: int
    item: Any


@dataclass(frozen=True)
class JobResult:
    seq: int
    result: Result
    seconds: float
    audio_seconds: float | None = None


def _passes(exc: BaseException, interruptible: bool) -> bool:
    """Whether ``exc`` from a task ends the run instead of its item: only a KeyboardInterrupt in the
    caller's own thread (serial: it may be the user's Ctrl-C). Anywhere else (a worker thread, a worker
    process that ignores SIGINT) it, SystemExit and the like come from the item: if they escaped, a
    thread worker would die with its item unanswered (the run hangs) and a process worker would be
    respawned and the item retried as if it had crashed."""
    return interruptible and isinstance(exc, KeyboardInterrupt)


def run_job(task: Task, job: Job, interruptible: bool = False) -> JobResult:
    """Run one item; what it raises becomes a Dropped/Failed result, never propagates (but a
    KeyboardInterrupt with ``interruptible``: see :func:`_passes`)."""
    start = time.perf_counter()
    try:
        value = task(job.item)
    except Drop as drop:
        return JobResult(job.seq, Dropped(drop.reason, drop.code), time.perf_counter() - start)
    except BaseException as exc:
        if _passes(exc, interruptible):
            raise
        failed = Failed.from_exception(exc, traceback=traceback.format_exc())
        return JobResult(job.seq, failed, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    try:
        audio = task.audio_seconds(job.item, value)
    except BaseException as exc:
        if _passes(exc, interruptible):
            raise
        audio = None
    return JobResult(job.seq, Ok(value), seconds, audio)


def timeout_failure(timeout: float | None) -> Failed:
    return Failed("Timeout", f"timeout: item took longer than {timeout:g}s", code=Reason.TIMEOUT)


class TaskHost:
    """The task inside a worker (a process, an actor, a thread, the caller): loaded and set up once; when
    that fails, every job fails with its reason instead of the worker dying (and being respawned) over
    and over. ``load`` makes the worker's task (unpickles it, copies it); ``inline_arrays``: the
    backend's array transport (:attr:`Backend.inline_arrays`), applied in a worker process;
    ``interruptible``: the task runs in the caller's thread (serial), where a KeyboardInterrupt is the
    user's and ends the run (:func:`_passes`)."""

    def __init__(
        self, load: Callable[[], Task], ctx: WorkerContext, inline_arrays: bool = False, interruptible: bool = False
    ) -> None:
        self.task: Task | None = None
        self.error: tuple[BaseException, str] | None = None
        self.interruptible = interruptible
        if inline_arrays:
            sharing.begin_inline()  # for the worker's life: it is this backend's process
        try:
            self.task = load()
            self.task.setup(ctx)
        except BaseException as exc:  # a setup's SystemExit must not kill a thread worker silently
            if _passes(exc, interruptible):
                raise
            self.error = (exc, traceback.format_exc())

    def run(self, job: Job) -> JobResult:
        if self.error is not None or self.task is None:
            error, tb = self.error or (RuntimeError("task missing"), "")
            failed = Failed.from_exception(error, f"task setup failed: {exception_text(error)}", tb)
            return JobResult(job.seq, failed, 0.0)
        return run_job(self.task, job, self.interruptible)

    def teardown(self) -> None:
        if self.task is not None and self.error is None:
            self.task.teardown()


class Backend(ABC):
    """Runs jobs on workers. The Pool never submits more than ``slots()`` jobs at once.

    ``inline_arrays``: how this backend's transport carries :class:`~voxmill.engine.SharedArray`s: by
    reference to a file in shared memory (False: worker processes on this machine), or inside the reference
    (True: Ray's object store, workers on other machines; threads of this process, where the reference is
    handed over as it is, and a file would be written and read back for nothing). Read from the class
    before a run starts, so the
    arrays the run's input makes are shared the right way from the first. ``shares_models``: the
    workers are threads of this process, and share one model manager (one slot) with the whole budget.
    """

    name: str = "base"
    inline_arrays: bool = False
    shares_models: bool = False

    def __init__(
        self,
        plan: ThreadPlan,
        timeout: float | None = None,
        model_budget: int | None = None,
        device: str = "auto",
        prefetch: int = 2,
        address: str | None = None,
        gpu_budget: int | None = None,
    ) -> None:
        self.plan = plan
        self.gpu_budget = gpu_budget
        self.prefetch = max(1, prefetch)
        self.timeout = timeout
        self.model_budget = model_budget
        self.device = device
        self.address = address  # the cluster to join (Ray; None starts a local one); others ignore it
        self._models: ModelSlot | None = None
        if self.shares_models:
            self._models = ModelSlot(model_budget, plan.threads_per_worker, device, gpu_budget)

    def context(self, index: int) -> WorkerContext:
        """Worker ``index``'s context: the shared model slot, or (slot None) one of its own per process."""
        return WorkerContext(
            index,
            self.plan.workers,
            self.plan.threads_per_worker,
            self.name,
            self.model_budget,
            self.device,
            self._models,
            self.gpu_budget,
        )

    def close_models(self) -> None:
        """After the workers stop: unload what the shared manager holds (a later run has its own)."""
        if self._models is not None:
            self._models.close()

    @abstractmethod
    def start(self, task: Task) -> None:
        """Start workers; each runs ``task.setup`` once."""

    @abstractmethod
    def submit(self, job: Job) -> None:
        """Hand a job to a worker; must not block for long."""

    @abstractmethod
    def poll(self, timeout: float | None) -> list[JobResult]:
        """Results finished since the last call; waits up to ``timeout`` seconds for at least one."""

    @abstractmethod
    def close(self, cancel: bool = False) -> None:
        """Stop workers. ``cancel``: drop queued jobs and stop running ones quickly (Ctrl-C)."""
