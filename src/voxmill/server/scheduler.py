"""Where the server's model work runs: a fixed set of worker threads sized by the engine's core budget,
a priority queue of jobs, and a bounded admission count per model kind.

Why not a ``Pool`` per request: eight concurrent requests would start eight pools on two cores and
time-slice them all, and every request would finish late. Here requests are served in arrival order
(the oldest request's pieces run first: measured with 8 clients, round-robin by piece index starved
long requests, p95 32.7 s against 11 s), except that the first piece of every request jumps the
queue, so a new client hears audio within about one piece's time even under load. Each request keeps
only a few pieces in flight (``lookahead``), so memory stays bounded however long its text.

Admission is per request, not per job: ``with scheduler.admit("piper"):`` holds one of ``max_queue``
places of its kind while the request runs; when all are taken, :class:`Busy` (the server answers 503
with Retry-After) instead of a backlog that grows without bound. onnxruntime and CTranslate2 release
the GIL, so worker threads run models in parallel; each session runs with the plan's threads per worker.
Routes await jobs with :func:`run_on`, which never lets a request give its lease back while a worker
still runs with the leased model.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from voxmill.engine.threads import ThreadPlan

__all__ = ["Busy", "Scheduler", "run_on"]

T = TypeVar("T")
CLOSE_TIMEOUT = 10.0  # seconds close() waits for running jobs (one piece each) to finish


class Busy(Exception):
    """Every place for this kind of model is taken: answer 503 and ask the client to retry."""

    def __init__(self, kind: str, limit: int) -> None:
        super().__init__(f"server busy: {limit} {kind} requests already waiting or running; retry shortly")
        self.kind = kind
        self.limit = limit


@dataclass(order=True)
class _Job:
    priority: tuple[int, int, int]
    run: Callable[[], Any] = field(compare=False)
    future: Future[Any] = field(compare=False)


class Scheduler:
    """``plan.workers`` threads run submitted jobs by priority; ``admit`` bounds requests per kind."""

    def __init__(self, plan: ThreadPlan, max_queue: int) -> None:
        self.plan = plan
        self.max_queue = max_queue
        self._heap: list[_Job] = []
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._admitted: dict[str, int] = {}
        self._arrivals = itertools.count()
        self._closed = False
        self._busy = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"voxmill-serve-{i}", daemon=True) for i in range(plan.workers)
        ]
        for thread in self._threads:
            thread.start()

    # ---- admission --------------------------------------------------------------------------------

    @contextmanager
    def admit(self, kind: str) -> Iterator[int]:
        """Hold one of ``max_queue`` places for a request of ``kind``; yields its arrival number (the
        second half of its jobs' priority). Raises :class:`Busy` when none is free."""
        with self._lock:
            if self._admitted.get(kind, 0) >= self.max_queue:
                raise Busy(kind, self.max_queue)
            self._admitted[kind] = self._admitted.get(kind, 0) + 1
            arrival = next(self._arrivals)
        try:
            yield arrival
        finally:
            with self._lock:
                self._admitted[kind] -= 1

    def admitted(self, kind: str | None = None) -> int:
        """Requests admitted now (waiting or running), of ``kind`` or of all kinds."""
        with self._lock:
            return sum(n for k, n in self._admitted.items() if kind in (None, k))

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker (cancelled ones, not yet popped, are not counted)."""
        with self._lock:
            return sum(1 for job in self._heap if not job.future.cancelled())

    @property
    def running(self) -> int:
        with self._lock:
            return self._busy

    # ---- jobs ---------------------------------------------------------------------------------------

    def submit(self, fn: Callable[[], T], arrival: int, step: int = 0) -> Future[T]:
        """Run ``fn()`` on a worker: first pieces (``step`` 0) first, then by request ``arrival``, then
        ``step``. Cancel the future to drop a job that has not started (a client that went away)."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("scheduler closed")
            heapq.heappush(self._heap, _Job((0 if step == 0 else 1, arrival, step), fn, future))
            self._ready.notify()
        return future

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._heap and not self._closed:
                    self._ready.wait()
                if self._closed and not self._heap:
                    return
                job = heapq.heappop(self._heap)
                self._busy += 1
            try:
                if job.future.set_running_or_notify_cancel():
                    try:
                        job.future.set_result(job.run())
                    except BaseException as exc:  # the route turns it into a response
                        job.future.set_exception(exc)
            finally:
                with self._lock:
                    self._busy -= 1

    def close(self) -> None:
        """Cancel queued jobs and stop the workers once the running ones finish."""
        with self._lock:
            self._closed = True
            for job in self._heap:
                job.future.cancel()
            self._heap.clear()
            self._ready.notify_all()
        deadline = time.monotonic() + CLOSE_TIMEOUT  # one wait for all: not 10 s per worker
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))


async def run_on(scheduler: Scheduler, arrival: int, job: Callable[[], T], step: int = 1) -> T:
    """``job()`` on one of ``scheduler``'s workers, awaited from the event loop (step 1 by default: not a
    first piece, no queue jump). Cancelled, it drops the job if it has not started, else waits for it."""
    future = scheduler.submit(job, arrival, step)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        if not future.cancel():
            # Already running (with the leased model): wait for it, so the lease is not released while
            # a worker still uses the model. A job that has not started is dropped by cancel().
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(concurrent.futures.wait, [future])
        raise
