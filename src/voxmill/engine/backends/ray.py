"""Ray actors as workers: the same runs on one machine or a cluster (``ray start`` on each node).

One actor per worker, each reserving ``num_cpus`` = its thread budget, runs ``Task.setup`` once and
then items in the order sent (at most ``prefetch`` calls held per actor). Arrays travel through Ray's
object store (``inline_arrays``: a ``/dev/shm`` file on one node is not visible on another), and Ray
ships numpy buffers out of band.

Short items go in batches: one actor call costs about a millisecond of driver, raylet and actor time
(on two cores that is a third of a 3-ms clip), so once item times are known each call carries enough
items for ~50 ms of work.

An actor that dies (node lost, ``ray.kill``, a crash in native code) cannot say which item killed
it: a batch holds several, and the reply of the call that finished just before the death may never
leave the process (news of a SIGKILL can overtake it). So every item it held runs again alone, on an
actor holding nothing else, which counts as its retry: an item whose lone run kills its actor too is
Failed. Items go to an actor only once its setup has replied, so a death before that is a death in
setup, whose items are innocent. Those rules are the remote-worker state machine's (:mod:`.remote`,
``per_item_replies = False``, ``eager = False``); this module is the transport.

``ray`` is imported only here, when this backend starts.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import socket
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from voxmill.engine.backends.base import Job, JobResult, TaskHost
from voxmill.engine.backends.remote import Call, RemoteBackend, RemoteWorker
from voxmill.engine.outcome import Failed
from voxmill.engine.task import Task, WorkerContext
from voxmill.engine.threads import thread_env, usable_cores
from voxmill.errors import ConfigError, MissingExtraError, Reason

__all__ = ["RayBackend", "cluster_cpus", "connect"]

# Ray's own start-up lines (token files, dashboard) are noise in a CLI run; errors still show.
_INIT_LOGGING = "ERROR"


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise MissingExtraError("ray", "ray") from exc
    return ray


def connect(address: str | None, cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (``auto``: the one ``ray start`` made here), or start a local
    Ray with ``cpus`` cores when None. Once per process: Ray stays up for later runs (starting it takes
    seconds) and stops when the process exits."""
    ray = _ray()
    if ray.is_initialized():
        return
    if address:
        _probe(address)
    try:
        if address:
            ray.init(address=address, logging_level=_INIT_LOGGING, log_to_driver=False)
        else:
            # Local workers see what this process sees (task modules found through sys.path, tests
            # included); a cluster's nodes need voxmill and the task's module installed. Through the
            # job's worker search path (what Ray itself uses for the script's folder), not a
            # runtime_env: one of those makes every actor wait for the runtime-env agent (0.95 vs 0.33 s).
            from ray.job_config import JobConfig

            ray.init(
                num_cpus=cpus,
                include_dashboard=False,
                logging_level=_INIT_LOGGING,
                log_to_driver=False,
                job_config=JobConfig(_py_driver_sys_path=[entry for entry in sys.path if entry]),
            )
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach a Ray cluster at {address}: {exc}") from exc


# Ray retries an unreachable head for minutes, logging each attempt; one plain TCP connect says the
# same thing in seconds, before Ray is asked.
_PROBE_SECONDS = 5.0


def _probe(address: str) -> None:
    """ConfigError unless ``HOST:PORT`` (or ``ray://HOST:PORT``) accepts a TCP connection; ``auto``
    and ``local`` are Ray's to find."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=_PROBE_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConfigError(f"--ray-address {address}: cannot reach a Ray cluster there ({reason})") from None


def cluster_cpus() -> int:
    """CPUs in the connected cluster (every node)."""
    return int(_ray().cluster_resources().get("CPU", 1))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class _Actor(TaskHost):
    """Body of a worker actor (wrapped with ``ray.remote`` at start: no ray import at module load)."""

    def __init__(self, task_blob: bytes, ctx: WorkerContext, inline_arrays: bool) -> None:
        os.environ.update(thread_env(ctx.threads))
        super().__init__(functools.partial(pickle.loads, task_blob), ctx, inline_arrays)

    def ready(self) -> bool:
        return True

    def run_many(self, jobs: list[Job]) -> list[JobResult]:
        return [self.run(job) for job in jobs]


@dataclass(eq=False)
class _Slot(RemoteWorker):
    handle: Any = None  # the actor
    ready_ref: Any = None  # its setup's reply, until taken


class RayBackend(RemoteBackend[_Slot]):
    name = "ray"
    inline_arrays = True  # a /dev/shm file on one node is not visible on another
    eager = False
    per_item_replies = False
    max_batch = 64  # one actor call costs about a millisecond: short items go ~50 ms of work per call

    def start(self, task: Task) -> None:
        ray = _ray()
        connect(self.address, usable_cores())
        super().start(task)
        self._remote = ray.remote(_Actor)
        self._run_id = uuid.uuid4().hex[:8]

    def _spawn(self, index: int) -> _Slot:
        # Named so an operator (or a test) can find a run's workers: ray.util.list_named_actors().
        name = f"voxmill-worker-{self._run_id}-{index}-{uuid.uuid4().hex[:4]}"
        handle = self._remote.options(num_cpus=self.plan.threads_per_worker, name=name).remote(
            self._blob, self.context(index), self.inline_arrays
        )
        return _Slot(index, handle=handle, ready_ref=handle.ready.remote())

    def _send(self, worker: _Slot, jobs: list[Job]) -> Any:
        return worker.handle.run_many.remote(jobs)

    def _wait(self, limit: float | None) -> None:
        ray = _ray()
        waiting: dict[Any, tuple[_Slot, Call | None]] = {}
        for slot in self._workers:
            if slot.ready_ref is not None:
                waiting[slot.ready_ref] = (slot, None)
            for sent in slot.held:
                waiting[sent.ref] = (slot, sent)
        if not waiting:
            if limit is not None:
                time.sleep(limit)
            return
        ready, _ = ray.wait(list(waiting), num_returns=1, timeout=limit)
        for ref in ready:
            slot, call = waiting[ref]
            if slot not in self._workers:
                continue  # replaced earlier in this round; its items were sent again
            if call is None:
                self._started(slot)
            else:
                self._collect(slot, call)

    def _started(self, slot: _Slot) -> None:
        ref, slot.ready_ref = slot.ready_ref, None
        try:
            _ray().get(ref)
        except Exception as exc:  # the actor died in setup (or could not be placed)
            self._on_death(slot, f"worker died: {_first_line(exc)}")
            return
        self._on_ready(slot)

    def _collect(self, slot: _Slot, call: Call) -> None:
        ray = _ray()
        try:
            results: list[JobResult] = ray.get(call.ref)
        except ray.exceptions.RayActorError as exc:
            self._on_death(slot, f"worker died: {_first_line(exc)}")
            return
        except Exception as exc:  # the results could not be stored, fetched or unpickled
            lost = Failed(type(exc).__name__, f"result lost: {_first_line(exc)}", code=Reason.TRANSPORT)
            results = [JobResult(job.seq, lost, 0.0) for job in call.jobs]
        self._on_reply(slot, call, results)

    def _kill(self, worker: _Slot) -> None:
        with contextlib.suppress(Exception):
            _ray().kill(worker.handle, no_restart=True)

    def _stop(self, cancel: bool) -> None:
        ray = _ray()
        if not cancel:
            with contextlib.suppress(Exception):
                ray.get([slot.handle.teardown.remote() for slot in self._workers], timeout=30)
        for slot in self._workers:
            self._kill(slot)
