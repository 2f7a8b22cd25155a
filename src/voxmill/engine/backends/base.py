"""The backend interface the Pool drives, and the per-item runner every backend shares.

A backend receives :class:`Job`s (sequence number + item), runs them with its workers and hands back
:class:`JobResult`s in any order. Ordering, windowing, journaling and progress live in the Pool, so a
new backend (Ray, a cluster) only has to move jobs to workers and results back.
"""

from __future__ import annotations

import pickle
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Sized
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from voxmill.engine.options import check_backend
from voxmill.engine.outcome import Drop, Dropped, Failed, Ok, Result
from voxmill.engine.task import Task, WorkerContext
from voxmill.engine.threads import ThreadPlan
from voxmill.errors import Reason

__all__ = ["Backend", "Job", "JobResult", "create_backend", "overdue", "run_job"]

H = TypeVar("H", bound="Holder")


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
        return JobResult(job.seq, Dropped(drop.reason, drop.code), time.perf_counter() - start)
    except Exception as exc:
        failed = Failed.from_exception(exc, traceback=traceback.format_exc())
        return JobResult(job.seq, failed, time.perf_counter() - start)
    seconds = time.perf_counter() - start
    try:
        audio = task.audio_seconds(job.item, value)
    except Exception:
        audio = None
    return JobResult(job.seq, Ok(value), seconds, audio)


class Holder(Protocol):
    """A worker as the process and Ray backends track it: the jobs it holds and since when its head runs."""

    @property
    def held(self) -> Sized: ...
    @property
    def ready(self) -> bool: ...
    @property
    def head_since(self) -> float: ...


def overdue(holders: list[H], timeout: float | None) -> tuple[list[H], float | None]:
    """Holders whose head item has run past ``timeout``, and the seconds until the next deadline."""
    if timeout is None:
        return [], None
    now = time.monotonic()
    late: list[H] = []
    next_deadline: float | None = None
    for holder in holders:
        if not holder.held or not holder.ready:
            continue
        remaining = holder.head_since + timeout - now
        if remaining <= 0:
            late.append(holder)
        else:
            next_deadline = remaining if next_deadline is None else min(next_deadline, remaining)
    return late, next_deadline


def after_death(
    held: list[Job], retried: set[int], reason: str, culprit: Failed | None, timeout: float | None
) -> tuple[JobResult | None, list[Job]]:
    """The jobs a dead worker held, in the order sent: its head was running and is the suspect. It is
    failed with ``culprit`` (a timeout) or, when it was already retried once, with ``reason``; else it is
    retried (added to ``retried``). Returns (the head's result or None, the jobs to queue again)."""
    if not held:
        return None, []
    head, rest = held[0], held[1:]
    if culprit is not None:
        return JobResult(head.seq, culprit, timeout or 0.0), rest
    if head.seq in retried:
        return JobResult(
            head.seq, Failed("WorkerDied", f"{reason} (after 1 retry)", code=Reason.WORKER_DIED), 0.0
        ), rest
    retried.add(head.seq)
    return None, held


def timeout_failure(timeout: float | None) -> Failed:
    return Failed("Timeout", f"timeout: item took longer than {timeout:g}s", code=Reason.TIMEOUT)


def setup_failed(job: Job, error: BaseException, tb: str) -> JobResult:
    return JobResult(job.seq, Failed.from_exception(error, f"task setup failed: {error}", tb), 0.0)


class TaskHost:
    """The task inside a worker process or actor: unpickled and set up once; when setup fails, every
    job fails with its reason instead of the worker dying (and being respawned) over and over."""

    def __init__(self, task_blob: bytes, ctx: WorkerContext) -> None:
        self.task: Task | None = None
        self.error: tuple[BaseException, str] | None = None
        try:
            self.task = pickle.loads(task_blob)
            self.task.setup(ctx)
        except Exception as exc:
            self.error = (exc, traceback.format_exc())

    def run(self, job: Job) -> JobResult:
        if self.error is not None or self.task is None:
            return setup_failed(job, *(self.error or (RuntimeError("task missing"), "")))
        return run_job(self.task, job)

    def teardown(self) -> None:
        if self.task is not None and self.error is None:
            self.task.teardown()


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
    address: str | None = None,
) -> Backend:
    """``address``: the Ray cluster to join (``ray`` only; None starts a local Ray)."""
    backend: type[Backend]
    if name == "ray":
        from voxmill.engine.backends.ray import RayBackend

        return RayBackend(plan, timeout, model_budget, device, prefetch, address=address)
    if name == "serial":
        from voxmill.engine.backends.serial import SerialBackend as backend
    elif name == "thread":
        from voxmill.engine.backends.thread import ThreadBackend as backend
    elif name == "process":
        from voxmill.engine.backends.process import ProcessBackend as backend
    else:
        check_backend(name)  # raises ConfigError naming the choices
    return backend(plan, timeout, model_budget, device, prefetch)
