"""The backend interface the Pool drives, and the per-item runner every backend shares.

A backend receives :class:`Job`s (sequence number + item), runs them with its workers and hands back
:class:`JobResult`s in any order. Ordering, windowing, journaling and progress live in the Pool, so a
new backend (Ray, a cluster) only has to move jobs to workers and results back.
"""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from voxmill.engine.outcome import Drop, Dropped, Failed, Ok, Result
from voxmill.engine.task import Task, WorkerContext
from voxmill.engine.threads import ThreadPlan

__all__ = ["Backend", "Job", "JobResult", "create_backend", "run_job"]


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


def run_job(task: Task, job: Job) -> JobResult:
    """Run one item; exceptions become Dropped/Failed results, never propagate."""
    start = time.perf_counter()
    try:
        value = task(job.item)
    except Drop as drop:
        return JobResult(job.seq, Dropped(drop.reason), time.perf_counter() - start)
    except Exception as exc:
        failed = Failed(type(exc).__name__, str(exc), traceback.format_exc())
        return JobResult(job.seq, failed, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    try:
        audio = task.audio_seconds(job.item, value)
    except Exception:
        audio = None
    return JobResult(job.seq, Ok(value), seconds, audio)


def setup_failed(job: Job, error: BaseException, tb: str) -> JobResult:
    return JobResult(job.seq, Failed(type(error).__name__, f"task setup failed: {error}", tb), 0.0)


class Backend(ABC):
    """Runs jobs on workers. The Pool never submits more than ``slots()`` jobs at once."""

    name: str = "base"

    def __init__(
        self,
        plan: ThreadPlan,
        timeout: float | None = None,
        model_budget: int | None = None,
        device: str = "auto",
        prefetch: int = 2,
    ) -> None:
        self.plan = plan
        self.prefetch = max(1, prefetch)
        self.timeout = timeout
        self.model_budget = model_budget
        self.device = device

    def context(self, index: int) -> WorkerContext:
        return WorkerContext(
            index, self.plan.workers, self.plan.threads_per_worker, self.name, self.model_budget, self.device
        )

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


def create_backend(
    name: str,
    plan: ThreadPlan,
    timeout: float | None,
    model_budget: int | None = None,
    device: str = "auto",
    prefetch: int = 2,
) -> Backend:
    backend: type[Backend]
    if name == "serial":
        from voxmill.engine.backends.serial import SerialBackend as backend
    elif name == "thread":
        from voxmill.engine.backends.thread import ThreadBackend as backend
    elif name == "process":
        from voxmill.engine.backends.process import ProcessBackend as backend
    else:
        raise ValueError(f"unknown backend {name!r}; use serial, thread or process")
    return backend(plan, timeout, model_budget, device, prefetch)
