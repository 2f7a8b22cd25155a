"""Worker processes (spawn): true parallelism for GIL-bound Python, and crash isolation.

Each worker has its own pipe, so the parent always knows which items a worker holds. Items go to a
worker at most ``prefetch`` at a time, run in the order sent, and each result is sent back before the
next item starts, so when a worker dies (SIGKILL, segfault, ``os._exit``) the oldest item it held is
the one that killed it: that item is retried once on a fresh worker, then Failed; the other items it
held are re-queued untouched. An item past its timeout gets its worker killed and replaced. Those
rules are the remote-worker state machine's (:mod:`.remote`); this module is the transport.

Workers start with *spawn*: forking a parent that already runs threads (onnxruntime, BLAS, rich)
can deadlock the child. Their thread budget is put in the environment before they start, so native
pools read it at import. Workers ignore SIGINT, even while they start; the parent decides how a
Ctrl-C ends them. They start as items arrive, never more than the plan's count.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing as mp
import os
import pickle
import queue
import selectors
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from typing import Any

from voxmill.engine import sharing
from voxmill.engine.backends.base import Job, JobResult, TaskHost
from voxmill.engine.backends.remote import Call, RemoteBackend, RemoteWorker, WorkerGone
from voxmill.engine.outcome import Failed, exception_text
from voxmill.engine.task import Task, WorkerContext
from voxmill.engine.threads import thread_env
from voxmill.errors import Reason

__all__ = ["ProcessBackend"]

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


def _worker_main(conn: Connection, task_blob: bytes, ctx: WorkerContext, inline_arrays: bool) -> None:
    # The parent decides how a Ctrl-C ends a run. Ignoring SIGINT discards one held back since spawn.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    parent = os.getppid()
    sharing.spool_owner(parent)
    host = TaskHost(functools.partial(pickle.loads, task_blob), ctx, inline_arrays)
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
        except OSError:  # BrokenPipeError: the parent is gone
            break
        except Exception as exc:  # pickling the value raised (any type: its __reduce__ is the task's code)
            message = f"result cannot be sent back: {exception_text(exc)}"
            try:
                conn.send(JobResult(job.seq, Failed(type(exc).__name__, message, code=Reason.TRANSPORT), 0.0))
            except OSError:
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


@dataclass(eq=False)
class _Worker(RemoteWorker):
    process: Any = None
    conn: Any = None  # the parent's end of the worker's pipe


class ProcessBackend(RemoteBackend[_Worker]):
    name = "process"

    def start(self, task: Task) -> None:
        sharing.own_spool()  # the workers' shared arrays are this process's to clean up
        super().start(task)
        self._mp = mp.get_context("spawn")
        self._selector = selectors.DefaultSelector()

    def _spawn(self, index: int) -> _Worker:
        parent_conn, child_conn = self._mp.Pipe(duplex=True)
        process = self._mp.Process(
            target=_worker_main,
            args=(child_conn, self._blob, self.context(index), self.inline_arrays),
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
        worker = _Worker(index, process=process, conn=parent_conn)
        # One selector for the whole run, told of each worker once (not rebuilt at every wait).
        self._selector.register(parent_conn, selectors.EVENT_READ, worker)
        self._selector.register(process.sentinel, selectors.EVENT_READ, worker)
        return worker

    def _send(self, worker: _Worker, jobs: list[Job]) -> None:
        (job,) = jobs  # max_batch is 1: one job per message
        try:
            worker.conn.send(job)
        except (BrokenPipeError, OSError) as exc:
            raise WorkerGone from exc

    def _receive(self, worker: _Worker, drain: bool = True) -> bool:
        """Read a worker's messages (one, or all waiting with ``drain``); False when the pipe is closed.

        The wait reads one message per readiness event: ``Connection.poll`` builds a selector on
        every call, and at hundreds of items a second that was a tenth of the parent's CPU.
        """
        try:
            while not drain or worker.conn.poll():
                message = worker.conn.recv()
                if message == "ready":
                    self._on_ready(worker)
                else:
                    head: Call | None = worker.held[0] if worker.held else None
                    self._on_reply(worker, head if head and head.jobs[0].seq == message.seq else None, [message])
                if not drain:
                    break
        except (EOFError, OSError):
            return False
        return True

    def _wait(self, limit: float | None) -> None:
        for key, _ in self._selector.select(limit):
            worker = key.data
            if worker not in self._workers:
                continue  # replaced earlier in this round
            alive = key.fileobj is worker.conn and self._receive(worker, drain=False)
            if not alive:
                self._receive(worker)  # what it sent before it ended
                worker.process.join(1)
                if worker.process.exitcode is not None:  # else: pipe closed but running; it exits or times out
                    self._on_death(worker, _death_reason(worker.process.exitcode))

    def _kill(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)
        self._forget(worker)
        worker.conn.close()

    def _forget(self, worker: _Worker) -> None:
        for fileobj in (worker.conn, worker.process.sentinel):
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(fileobj)

    def _stop(self, cancel: bool) -> None:
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
