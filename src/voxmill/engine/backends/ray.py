"""Ray actors as workers: the same runs on one machine or a cluster (``ray start`` on each node).

One actor per worker, each reserving ``num_cpus`` = its thread budget, runs ``Task.setup`` once and
then items in the order sent (at most ``prefetch`` calls held per actor). Arrays travel through Ray's
object store: while a run is on this backend :func:`~voxmill.engine.sharing.share` keeps arrays
inline (a ``/dev/shm`` file on one node is not visible on another), and Ray ships numpy buffers out
of band.

Short items go in batches: one actor call costs about a millisecond of driver, raylet and actor time
(on two cores that is a third of a 3-ms clip), so once item times are known each call carries enough
items for ~50 ms of work.

An actor that dies (node lost, ``ray.kill``, a crash in native code) cannot say which item killed
it: a batch holds several, and the reply of the call that finished just before the death may never
leave the process (news of a SIGKILL can overtake it). So every item it held runs again alone, on an
actor holding nothing else, which counts as its retry: an item whose lone run kills its actor too is
Failed. Items go to an actor only once its setup has replied, so a death before that is a death in
setup, whose items are innocent.

``ray`` is imported only here, when this backend starts.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import time
import uuid
from collections import deque
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
from voxmill.engine.threads import ThreadPlan, thread_env, usable_cores
from voxmill.errors import ConfigError, Reason

__all__ = ["RayBackend", "cluster_cpus", "connect"]

# Actors that die before they are ready (setup crashes the process) are not replaced forever: after
# this many in a row every remaining item fails with the reason, as on the process backend.
MAX_START_FAILURES = 3

# Work per actor call once item times are known: long enough that the per-call cost is a few percent,
# short enough that the last batches of a run still spread over every actor.
BATCH_SECONDS = 0.05
MAX_BATCH = 64

# Ray's own start-up lines (token files, dashboard) are noise in a CLI run; errors still show.
_INIT_LOGGING = "ERROR"


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("the ray backend needs Ray: pip install 'voxmill[ray]'") from exc
    return ray


def connect(address: str | None, cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (``auto``: the one ``ray start`` made here), or start a local
    Ray with ``cpus`` cores when None. Once per process: Ray stays up for later runs (starting it takes
    seconds) and stops when the process exits."""
    ray = _ray()
    if ray.is_initialized():
        return
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


def cluster_cpus() -> int:
    """CPUs in the connected cluster (every node)."""
    return int(_ray().cluster_resources().get("CPU", 1))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


class _Actor(TaskHost):
    """Body of a worker actor (wrapped with ``ray.remote`` at start: no ray import at module load)."""

    def __init__(self, task_blob: bytes, ctx: WorkerContext) -> None:
        os.environ.update(thread_env(ctx.threads))
        sharing.keep_inline(True)
        super().__init__(task_blob, ctx)

    def ready(self) -> bool:
        return True

    def run_many(self, jobs: list[Job]) -> list[JobResult]:
        return [self.run(job) for job in jobs]


class _Slot:
    def __init__(self, index: int, handle: Any) -> None:
        self.index = index
        self.handle = handle
        self.ready = False  # setup replied: items go to it from then; so do timeouts
        self.ready_ref = handle.ready.remote()
        self.held: deque[tuple[Any, list[Job]]] = deque()  # (object ref, its batch), in the order sent
        self.head_since = time.monotonic()
        self.isolated = False  # it runs a suspect of an earlier death, alone


class RayBackend(Backend):
    name = "ray"

    def __init__(self, plan: ThreadPlan, timeout: float | None = None, model_budget: int | None = None,
                 device: str = "auto", prefetch: int = 2, address: str | None = None) -> None:  # fmt: skip
        super().__init__(plan, timeout, model_budget, device, prefetch)
        self.address = address

    def start(self, task: Task) -> None:
        ray = _ray()
        connect(self.address, usable_cores())
        self._remote = ray.remote(_Actor)
        self._blob = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        self._queue: deque[Job] = deque()
        self._results: list[JobResult] = []
        self._retried: set[int] = set()  # suspects of a death: each runs alone from now on
        self._timed = (0.0, 0)  # seconds and count of items run, for the batch size
        self._owner: dict[Any, _Slot] = {}  # object ref -> the actor that runs it
        self._starting: dict[Any, _Slot] = {}  # ready ref -> an actor still in setup
        self._start_failures = 0
        self._broken: str | None = None
        self._run_id = uuid.uuid4().hex[:8]
        self._slots = [self._spawn(i) for i in range(self.plan.workers)]

    def _spawn(self, index: int) -> _Slot:
        # Named so an operator (or a test) can find a run's workers: ray.util.list_named_actors().
        name = f"voxmill-worker-{self._run_id}-{index}-{uuid.uuid4().hex[:4]}"
        handle = self._remote.options(num_cpus=self.plan.threads_per_worker, name=name).remote(
            self._blob, self.context(index)
        )
        slot = _Slot(index, handle)
        self._starting[slot.ready_ref] = slot
        return slot

    def submit(self, job: Job) -> None:
        if self._broken is not None:
            self._results.append(JobResult(job.seq, Failed("WorkerDied", self._broken, code=Reason.WORKER_DIED), 0.0))
            return
        self._queue.append(job)
        self._dispatch()

    def _batch_size(self) -> int:
        seconds, count = self._timed
        if self.timeout is not None or not count:
            return 1  # a timeout is per item; unknown item times: one per call until measured
        return max(1, min(MAX_BATCH, int(BATCH_SECONDS * count / max(seconds, 1e-6))))

    def _next_batch(self, size: int) -> list[Job]:
        batch = [self._queue.popleft()]
        while self._queue and len(batch) < size and self._queue[0].seq not in self._retried:
            batch.append(self._queue.popleft())
        return batch

    def _dispatch(self) -> None:
        size = self._batch_size()
        for level in range(1, self.prefetch + 1):
            for slot in self._slots:
                while self._queue and slot.ready and not slot.isolated and len(slot.held) < level:
                    if self._queue[0].seq in self._retried:
                        if slot.held:
                            break  # a suspect waits for an idle actor (items behind it wait too)
                        batch = [self._queue.popleft()]
                        slot.isolated = True
                    else:
                        batch = self._next_batch(size)
                    ref = slot.handle.run_many.remote(batch)
                    if not slot.held:
                        slot.head_since = time.monotonic()
                    slot.held.append((ref, batch))
                    self._owner[ref] = slot

    def _replace(self, slot: _Slot, reason: str, culprit: Failed | None = None) -> None:
        """A fresh actor for a dead (or killed) one; what it held is blamed or sent again (see top)."""
        ray = _ray()
        with contextlib.suppress(Exception):
            ray.kill(slot.handle, no_restart=True)
        held = [job for _, batch in slot.held for job in batch]
        for ref, _ in slot.held:
            self._owner.pop(ref, None)
        slot.held.clear()
        self._starting.pop(slot.ready_ref, None)
        result: JobResult | None = None
        if not slot.ready:
            self._start_failures += 1  # died in setup: it was sent nothing
            if self._start_failures >= MAX_START_FAILURES:
                self._give_up(f"workers die before they start ({reason})")
                self._slots.remove(slot)
                return
        elif culprit is not None or slot.isolated:
            # A timeout (the actor was alive: its head call is the one running) or a suspect's lone run.
            result, held = after_death(held, self._retried, reason, culprit, self.timeout)
        else:
            self._retried.update(job.seq for job in held)
        if result is not None:
            self._results.append(result)
        self._queue.extendleft(reversed(held))
        self._slots[self._slots.index(slot)] = self._spawn(slot.index)

    def _give_up(self, reason: str) -> None:
        self._broken = reason
        for job in [*self._queue, *(job for slot in self._slots for _, batch in slot.held for job in batch)]:
            self._results.append(JobResult(job.seq, Failed("WorkerDied", reason, code=Reason.WORKER_DIED), 0.0))
        self._queue.clear()
        for slot in self._slots:
            for ref, _ in slot.held:
                self._owner.pop(ref, None)
            slot.held.clear()

    def _started(self, ref: Any) -> None:
        slot = self._starting.pop(ref)
        try:
            _ray().get(ref)
        except Exception as exc:  # the actor died in setup (or could not be placed)
            self._replace(slot, f"worker died: {_first_line(exc)}")
            return
        slot.ready = True
        self._start_failures = 0
        slot.head_since = time.monotonic()

    def _collect(self, ref: Any) -> None:
        ray = _ray()
        slot = self._owner.get(ref)
        if slot is None:
            return  # from an actor already replaced; its items were re-sent
        batch = next(batch for r, batch in slot.held if r == ref)
        try:
            results: list[JobResult] = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            self._replace(slot, f"worker died: {_first_line(exc)}")
            return
        except Exception as exc:  # the results could not be stored, fetched or unpickled
            lost = Failed(type(exc).__name__, f"result lost: {_first_line(exc)}", code=Reason.TRANSPORT)
            results = [JobResult(job.seq, lost, 0.0) for job in batch]
        del self._owner[ref]
        slot.held = deque(entry for entry in slot.held if entry[0] != ref)
        slot.head_since = time.monotonic()
        slot.isolated = slot.isolated and bool(slot.held)
        seconds, count = self._timed
        self._timed = (seconds + sum(r.seconds for r in results), count + len(results))
        self._results.extend(results)

    def _check_timeouts(self) -> float | None:
        late, next_deadline = overdue(self._slots, self.timeout)
        for slot in late:
            self._replace(slot, "timeout", culprit=timeout_failure(self.timeout))
        return next_deadline

    def poll(self, timeout: float | None) -> list[JobResult]:
        ray = _ray()
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
            refs = [*self._starting, *self._owner]
            if refs:
                ready, _ = ray.wait(refs, num_returns=1, timeout=limit)
                for ref in ready:
                    if ref in self._starting:
                        self._started(ref)
                    else:
                        self._collect(ref)
            elif limit is not None:
                time.sleep(limit)
            if not self._results and deadline is not None and time.monotonic() >= deadline:
                return []

    def close(self, cancel: bool = False) -> None:
        if not hasattr(self, "_slots"):
            return
        ray = _ray()
        if not cancel:
            with contextlib.suppress(Exception):
                ray.get([slot.handle.teardown.remote() for slot in self._slots], timeout=30)
        for slot in self._slots:
            with contextlib.suppress(Exception):
                ray.kill(slot.handle, no_restart=True)
