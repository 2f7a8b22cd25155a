"""Worker processes (spawn): true parallelism for GIL-bound Python, and crash isolation.

Each worker has its own pipe, so the parent always knows which items a worker holds. Items go to a
worker at most ``prefetch`` at a time and run in the order sent, so when a worker dies (SIGKILL,
segfault, ``os._exit``) the oldest item it held is the one that killed it: that item is retried once
on a fresh worker, then Failed; the other items it held are re-queued untouched. An item past its
timeout gets its worker killed and replaced.

Workers start with *spawn*: forking a parent that already runs threads (onnxruntime, BLAS, rich)
can deadlock the child. Their thread budget is put in the environment before they start, so native
pools read it at import. Workers ignore SIGINT, even while they start; the parent decides how a
Ctrl-C ends them. They start as items arrive, never more than the plan's count.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import queue
import selectors
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any

from voxmill.engine import sharing
from voxmill.engine.backends.base import (
    Backend,
    Job,
    JobResult,
    TaskHost,
    after_death,
    overdue,
    timeout_failure,
)
from voxmill.engine.outcome import Failed
from voxmill.engine.task import Task, WorkerContext
from voxmill.engine.threads import thread_env
from voxmill.errors import Reason

# Workers that die before they are ready (their module cannot even be imported) are not respawned
# forever: after this many in a row, every remaining item fails with the reason.
MAX_START_FAILURES = 3
_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold back Ctrl-C in this thread while a worker is spawned: the child inherits the mask, so a
    Ctrl-C while it starts (importing for seconds) waits instead of printing a KeyboardInterrupt
    traceback per worker; the worker then ignores it. Here it is delivered once the spawn is done."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows
        yield
        return
    # Starting multiprocessing's resource tracker (at the first spawn) unblocks SIGINT when done:
    # start it first, or the first worker would start with Ctrl-C deliverable.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _read_jobs(conn: Connection, jobs: queue.SimpleQueue[Any]) -> None:
    """Move jobs from the pipe to ``jobs`` as soon as they arrive. Read on their own thread because a
    worker blocked sending a large result while the parent is blocked sending it a large prefetched job
    would wait for each other forever: the pipe's read side must keep draining. ``None`` ends."""
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone: nothing left to do
            job = None
        jobs.put(job)
        if job is None:
            return


def _worker_main(conn: Connection, task_blob: bytes, ctx: WorkerContext) -> None:
    # The parent decides how a Ctrl-C ends a run. Ignoring SIGINT discards one held back since spawn.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    parent = os.getppid()
    sharing.spool_owner(parent)
    host = TaskHost(task_blob, ctx)
    try:
        conn.send("ready")
    except (BrokenPipeError, OSError):  # the run was cancelled while this worker started
        host.teardown()
        return
    jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
    threading.Thread(target=_read_jobs, args=(conn, jobs), daemon=True, name="voxmill-jobs").start()
    while True:
        job = jobs.get()
        # A killed parent leaves prefetched jobs readable in the pipe; nobody wants their results.
        if job is None or os.getppid() != parent:
            break
        result = host.run(job)
        try:
            conn.send(result)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            conn.send(
                JobResult(
                    job.seq,
                    Failed(type(exc).__name__, f"result cannot be sent back: {exc}", code=Reason.TRANSPORT),
                    0.0,
                )
            )
        except (BrokenPipeError, OSError):
            break
    host.teardown()


def _death_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "worker died"
    if exitcode < 0:
        try:
            return f"worker died: killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker died: killed by signal {-exitcode}"
    return f"worker died: exit code {exitcode}"


class _Worker:
    def __init__(self, index: int, process: Any, conn: Connection) -> None:
        self.index = index
        self.process = process
        self.conn = conn
        self.ready = False
        self.held: deque[Job] = deque()  # sent, not yet answered; the head is running
        self.head_since = 0.0  # when the head item started (for timeouts)


class ProcessBackend(Backend):
    name = "process"

    def start(self, task: Task) -> None:
        sharing.own_spool()  # the workers' shared arrays are this process's to clean up
        self._mp = mp.get_context("spawn")
        self._blob = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        self._queue: deque[Job] = deque()
        self._results: list[JobResult] = []
        self._retried: set[int] = set()
        self._start_failures = 0
        self._broken: str | None = None
        self._selector = selectors.DefaultSelector()
        self._workers: list[_Worker] = []
        self._submitted = 0

    def _grow(self) -> None:
        # Workers start as items arrive, one per item up to the plan: a stream of 3 items (a total the
        # plan could not know) never pays for 64 interpreters, and the first items start at once.
        if len(self._workers) < min(self.plan.workers, self._submitted):
            self._workers.append(self._spawn(len(self._workers)))

    def _spawn(self, index: int) -> _Worker:
        parent_conn, child_conn = self._mp.Pipe(duplex=True)
        process = self._mp.Process(
            target=_worker_main,
            args=(child_conn, self._blob, self.context(index)),
            name=f"voxmill-worker-{index}",
            daemon=True,
        )
        # The child inherits os.environ at spawn; set the thread budget just for that moment.
        with _ENV_LOCK, _sigint_held():
            saved = {k: os.environ.get(k) for k in thread_env(1)}
            os.environ.update(thread_env(self.plan.threads_per_worker))
            try:
                process.start()
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
        child_conn.close()
        worker = _Worker(index, process, parent_conn)
        # One selector for the whole run, told of each worker once (not rebuilt at every wait).
        self._selector.register(parent_conn, selectors.EVENT_READ, worker)
        self._selector.register(process.sentinel, selectors.EVENT_READ, worker)
        return worker

    def _forget(self, worker: _Worker) -> None:
        for fileobj in (worker.conn, worker.process.sentinel):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fileobj)

    def submit(self, job: Job) -> None:
        if self._broken is not None:
            self._results.append(JobResult(job.seq, Failed("WorkerDied", self._broken, code=Reason.WORKER_DIED), 0.0))
            return
        self._submitted += 1
        self._grow()
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        # Level by level (every worker one item, then a second...): the first items of a run spread
        # over all workers instead of queueing behind each other in the first worker's pipe.
        for level in range(1, self.prefetch + 1):
            for worker in self._workers:
                while self._queue and len(worker.held) < level:
                    if not self._send(worker):
                        break

    def _send(self, worker: _Worker) -> bool:
        """Send the next queued job to ``worker``; False when its pipe is broken (it is dying)."""
        job = self._queue.popleft()
        try:
            worker.conn.send(job)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            failed = Failed(type(exc).__name__, f"item cannot be sent to a worker: {exc}", code=Reason.TRANSPORT)
            self._results.append(JobResult(job.seq, failed, 0.0))
            return True
        except (BrokenPipeError, OSError):
            self._queue.appendleft(job)  # the worker is dying; poll() will replace it
            return False
        if not worker.held:
            worker.head_since = time.monotonic()
        worker.held.append(job)
        return True

    def _receive(self, worker: _Worker, drain: bool = True) -> bool:
        """Read a worker's messages (one, or all waiting with ``drain``); False when the pipe is closed.

        The poll loop reads one message per readiness event: ``Connection.poll`` builds a selector on
        every call, and at hundreds of items a second that was a tenth of the parent's CPU.
        """
        try:
            while not drain or worker.conn.poll():
                message = worker.conn.recv()
                if message == "ready":
                    worker.ready = True
                    self._start_failures = 0
                    worker.head_since = time.monotonic()
                elif worker.held and worker.held[0].seq == message.seq:
                    worker.held.popleft()
                    self._results.append(message)
                    worker.head_since = time.monotonic()
                else:
                    self._results.append(message)
                    worker.head_since = time.monotonic()
                if not drain:
                    break
        except (EOFError, OSError):
            return False
        return True

    def _replace(self, worker: _Worker, reason: str, culprit_failed: Failed | None = None) -> None:
        """Swap a dead or killed worker for a fresh one; decide what happens to the items it held."""
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        self._forget(worker)
        worker.conn.close()
        held = list(worker.held)
        worker.held.clear()
        if not worker.ready:
            # It died starting up, before running anything: its items are innocent, re-queue them all.
            self._queue.extendleft(reversed(held))
            held = []
        result, again = after_death(held, self._retried, reason, culprit_failed, self.timeout)
        if result is not None:
            self._results.append(result)
        self._queue.extendleft(reversed(again))
        position = self._workers.index(worker)
        if not worker.ready:
            self._start_failures += 1
        if self._start_failures >= MAX_START_FAILURES:
            self._give_up(f"workers die before they start ({reason}); is the task importable?")
            del self._workers[position]
            return
        self._workers[position] = self._spawn(worker.index)

    def _give_up(self, reason: str) -> None:
        self._broken = reason
        for job in [*self._queue, *(j for w in self._workers for j in w.held)]:
            self._results.append(JobResult(job.seq, Failed("WorkerDied", reason, code=Reason.WORKER_DIED), 0.0))
        self._queue.clear()
        for worker in self._workers:
            worker.held.clear()

    def _check_timeouts(self) -> float | None:
        """Kill workers whose head item overran; return seconds until the next deadline."""
        late, next_deadline = overdue(self._workers, self.timeout)
        for worker in late:
            self._replace(worker, "timeout", culprit_failed=timeout_failure(self.timeout))
        return next_deadline

    def poll(self, timeout: float | None) -> list[JobResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._dispatch()
            if self._results:
                results, self._results = self._results, []
                return results
            limit = self._check_timeouts()
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                limit = left if limit is None else min(limit, left)
            for key, _ in self._selector.select(limit):
                worker = key.data
                if worker not in self._workers:
                    continue  # replaced earlier in this round
                alive = key.fileobj is worker.conn and self._receive(worker, drain=False)
                if not alive:
                    self._receive(worker)  # what it sent before it ended
                    self._receive_after_death(worker)
            self._check_timeouts()
            if not self._results and deadline is not None and time.monotonic() >= deadline:
                return []

    def _receive_after_death(self, worker: _Worker) -> None:
        worker.process.join(1)
        if worker.process.exitcode is None:
            return  # closed pipe but still running: it will exit or hit the timeout
        self._replace(worker, _death_reason(worker.process.exitcode))

    def close(self, cancel: bool = False) -> None:
        if not hasattr(self, "_workers"):
            return  # start() failed before any worker existed (e.g. spawn refused): nothing to stop
        if cancel:
            self._queue.clear()
        for worker in self._workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                worker.conn.send(None)
        # Cancel: running items get a moment, then SIGTERM, then SIGKILL — all well inside 5 s.
        grace = 1.0 if cancel else 30.0
        deadline = time.monotonic() + grace
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in self._workers:
            worker.process.join(1.0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(1.0)
            self._forget(worker)
            worker.conn.close()
        self._selector.close()
