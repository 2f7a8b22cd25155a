"""One state machine for backends whose workers are other processes: worker processes and Ray actors.

The parent keeps, per worker, the calls it sent and not yet answered (oldest first: the head one is
running), and decides everything here: which worker gets which items, when a worker is late, what
happens to what a dead worker held. A backend only supplies the transport, as hooks: ``_spawn`` a
worker, ``_send`` it a call, ``_wait`` for what happens next (reporting through ``_on_ready``,
``_on_reply`` and ``_on_death``), ``_kill`` one and ``_stop`` them all.

- Workers start as items arrive, one per item up to the plan's count: a stream of 3 items (a total
  the plan could not know) never pays for 64 interpreters, and the first items start at once.
- Items go out level by level (every worker one call, then a second, up to ``prefetch``), so the first
  items of a run spread over all workers instead of queueing behind each other in one.
- A worker that dies before its setup replied was running nothing: what it held is queued again, and
  after ``MAX_START_FAILURES`` such deaths in a row every remaining item fails with the reason (a task
  that cannot even be imported is not respawned forever).
- A worker that dies later: with ``per_item_replies`` (each item's result leaves the worker before the
  next starts) the head of what it held killed it; without (Ray: a batch holds several items, and
  the reply of the call just before the death may never leave the process) any of them may have, so
  each runs again alone on a worker holding nothing else. Either way a suspect runs once more, and a
  suspect that kills its worker again is Failed (``worker_died``); innocent items run as if nothing
  happened.
- An item past the run's timeout gets its worker killed and replaced; it is Failed (``timeout``).
"""

from __future__ import annotations

import pickle
import time
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from voxmill.engine.backends.base import Backend, Job, JobResult, timeout_failure
from voxmill.engine.outcome import Failed, exception_text
from voxmill.engine.task import Task
from voxmill.errors import ConfigError, Reason

__all__ = ["MAX_START_FAILURES", "Call", "RemoteBackend", "RemoteWorker", "WorkerGone"]

# Workers that die before they are ready are not respawned forever: after this many in a row, every
# remaining item fails with the reason.
MAX_START_FAILURES = 3

# The longest single wait for the workers: longer deadlines are waited for in several.
MAX_WAIT = 3600.0

# Work per call once item times are known (backends with ``max_batch`` > 1): long enough that the
# per-call cost is a few percent, short enough that the last batches still spread over every worker.
BATCH_SECONDS = 0.05


class WorkerGone(Exception):
    """Raised by ``_send``: the worker's channel is closed (it is dying); the call goes back to the queue."""


@dataclass(eq=False)
class Call:
    """Jobs sent to a worker in one message; ``ref``: the backend's handle on the reply (a Ray object ref)."""

    jobs: list[Job]
    ref: Any = None


@dataclass(eq=False)
class RemoteWorker:
    """A worker as the parent tracks it. ``ready``: its setup replied (timeouts count from then);
    ``isolated``: it runs a suspect of an earlier death, alone."""

    index: int
    ready: bool = False
    held: deque[Call] = field(default_factory=deque)
    head_since: float = field(default_factory=time.monotonic)
    isolated: bool = False


W = TypeVar("W", bound=RemoteWorker)


def _worker_died(reason: str) -> Failed:
    return Failed("WorkerDied", reason, code=Reason.WORKER_DIED)


class RemoteBackend(Backend, Generic[W]):
    """The state machine; subclasses implement the transport hooks. ``eager``: calls may be sent before
    setup replied (they wait in the worker's channel); ``max_batch``: most items per call (the batch
    grows to ~``BATCH_SECONDS`` of work once item times are known; 1 with a timeout);
    ``per_item_replies``: the head of a dead worker's items is the one that killed it (see above)."""

    eager: bool = True
    max_batch: int = 1
    per_item_replies: bool = True

    def start(self, task: Task) -> None:
        try:
            self._blob = pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # a lambda, a local function, a task holding a lock or an open file
            # One usage error for the run, before any worker starts, not a raw PicklingError.
            raise ConfigError(
                f"--backend {self.name}: the task cannot be sent to worker processes ({exception_text(exc)}); "
                "use a module-level function or class (or a functools.partial of one), or backend='thread'"
            ) from exc
        self._queue: deque[Job] = deque()
        self._results: list[JobResult] = []
        self._retried: set[int] = set()  # suspects of a death: each runs alone from now on
        self._timed = (0.0, 0)  # seconds and count of items run, for the batch size
        self._start_failures = 0
        self._broken: str | None = None
        self._workers: list[W] = []
        self._submitted = 0

    # ---- hooks --------------------------------------------------------------------------------------

    @abstractmethod
    def _spawn(self, index: int) -> W:
        """Start worker ``index`` (its context: ``self.context(index)``, its task: ``self._blob``)."""

    @abstractmethod
    def _send(self, worker: W, jobs: list[Job]) -> Any:
        """Send one call; returns the handle on its reply (or None). Raises WorkerGone when the worker's
        channel is closed, anything else when the jobs cannot be sent (they fail: ``transport``)."""

    @abstractmethod
    def _wait(self, limit: float | None) -> None:
        """Wait up to ``limit`` seconds (None: no limit) for the workers, reporting what happened."""

    @abstractmethod
    def _kill(self, worker: W) -> None:
        """End a dead, late or dying worker and free what the parent holds for it."""

    @abstractmethod
    def _stop(self, cancel: bool) -> None:
        """End every worker: cleanly (each tears its task down), or quickly with ``cancel``."""

    # ---- what the workers report --------------------------------------------------------------------

    def _on_ready(self, worker: W) -> None:
        worker.ready = True
        self._start_failures = 0
        worker.head_since = time.monotonic()

    def _on_reply(self, worker: W, call: Call | None, results: list[JobResult]) -> None:
        if call is None or call not in worker.held:
            return  # a call already given up on: its jobs were failed or sent again
        worker.held.remove(call)
        worker.head_since = time.monotonic()
        worker.isolated = worker.isolated and bool(worker.held)
        seconds, count = self._timed
        self._timed = (seconds + sum(r.seconds for r in results), count + len(results))
        self._results.extend(results)

    def _on_death(self, worker: W, reason: str, culprit: Failed | None = None) -> None:
        """A worker died (or is killed: ``culprit``, its head item's timeout): blame or re-queue what it
        held (see the module's docstring) and start a fresh one in its place."""
        self._kill(worker)
        held = [job for call in worker.held for job in call.jobs]
        worker.held.clear()
        result: JobResult | None = None
        if not worker.ready:
            self._start_failures += 1  # it died starting up, running nothing: its items are innocent
        elif culprit is not None or worker.isolated or self.per_item_replies:
            result, held = self._blame_head(held, reason, culprit)
        else:
            self._retried.update(job.seq for job in held)
        if result is not None:
            self._results.append(result)
        self._queue.extendleft(reversed(held))
        position = self._workers.index(worker)
        if self._start_failures >= MAX_START_FAILURES:
            del self._workers[position]
            self._give_up(f"workers die before they start ({reason}); is the task importable?")
            return
        self._workers[position] = self._spawn(worker.index)

    def _blame_head(self, held: list[Job], reason: str, culprit: Failed | None) -> tuple[JobResult | None, list[Job]]:
        """The head was running: it is failed with ``culprit`` (a timeout) or, when it already had its
        retry, with ``reason``; else it becomes a suspect. Returns (its result or None, jobs to re-queue)."""
        if not held:
            return None, []
        head, rest = held[0], held[1:]
        if culprit is not None:
            return JobResult(head.seq, culprit, self.timeout or 0.0), rest
        if head.seq in self._retried:
            return JobResult(head.seq, _worker_died(f"{reason} (after 1 retry)"), 0.0), rest
        self._retried.add(head.seq)
        return None, held

    def _give_up(self, reason: str) -> None:
        self._broken = reason
        jobs = [*self._queue, *(job for worker in self._workers for call in worker.held for job in call.jobs)]
        self._results.extend(JobResult(job.seq, _worker_died(reason), 0.0) for job in jobs)
        self._queue.clear()
        for worker in self._workers:
            worker.held.clear()

    # ---- the Backend interface ----------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        if self._broken is not None:
            self._results.append(JobResult(job.seq, _worker_died(self._broken), 0.0))
            return
        self._submitted += 1
        if len(self._workers) < min(self.plan.workers, self._submitted):
            self._workers.append(self._spawn(len(self._workers)))
        self._queue.append(job)
        self._dispatch()

    def _batch_size(self) -> int:
        seconds, count = self._timed
        if self.max_batch == 1 or self.timeout is not None or not count:
            return 1  # a timeout is per item; unknown item times: one per call until measured
        return max(1, min(self.max_batch, int(BATCH_SECONDS * count / max(seconds, 1e-6))))

    def _next_batch(self, size: int) -> list[Job]:
        batch = [self._queue.popleft()]
        while self._queue and len(batch) < size and self._queue[0].seq not in self._retried:
            batch.append(self._queue.popleft())
        return batch

    def _dispatch(self) -> None:
        size = self._batch_size()
        for level in range(1, self.prefetch + 1):
            for worker in list(self._workers):
                while self._queue and (worker.ready or self.eager) and not worker.isolated and len(worker.held) < level:
                    suspect = self._queue[0].seq in self._retried
                    if suspect and worker.held:
                        break  # a suspect waits for an idle worker (the items behind it wait too)
                    jobs = [self._queue.popleft()] if suspect else self._next_batch(size)
                    if not self._send_call(worker, jobs, isolated=suspect):
                        break

    def _send_call(self, worker: W, jobs: list[Job], isolated: bool) -> bool:
        """Send ``jobs`` to ``worker``; False when its channel is closed (it is dying)."""
        try:
            ref = self._send(worker, jobs)
        except WorkerGone:
            self._queue.extendleft(reversed(jobs))  # the wait will find it dead and replace it
            return False
        except Exception as exc:  # the items do not pickle (or the transport refuses them)
            lost = Failed(type(exc).__name__, f"item cannot be sent to a worker: {exc}", code=Reason.TRANSPORT)
            self._results.extend(JobResult(job.seq, lost, 0.0) for job in jobs)
            return True
        if not worker.held:
            worker.head_since = time.monotonic()
        worker.held.append(Call(jobs, ref))
        worker.isolated = worker.isolated or isolated
        return True

    def _check_timeouts(self) -> float | None:
        """Kill workers whose head item overran; return seconds until the next deadline."""
        if self.timeout is None:
            return None
        now = time.monotonic()
        next_deadline: float | None = None
        for worker in list(self._workers):
            if not worker.held or not worker.ready:
                continue
            remaining = worker.head_since + self.timeout - now
            if remaining <= 0:
                self._on_death(worker, "timeout", culprit=timeout_failure(self.timeout))
            else:
                next_deadline = remaining if next_deadline is None else min(next_deadline, remaining)
        return next_deadline

    def poll(self, timeout: float | None) -> list[JobResult]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._dispatch()
            limit = self._check_timeouts()
            if self._results:
                results, self._results = self._results, []
                return results
            if deadline is not None:
                left = max(0.0, deadline - time.monotonic())
                limit = left if limit is None else min(limit, left)
            # select() and ray.wait() refuse waits of ~1e300 s (OverflowError); a wait that returns
            # early just goes round this loop again.
            self._wait(None if limit is None else min(limit, MAX_WAIT))
            if not self._results and deadline is not None and time.monotonic() >= deadline:
                return []

    def close(self, cancel: bool = False) -> None:
        if not hasattr(self, "_workers"):
            return  # start() failed before any worker existed: nothing to stop
        if cancel:
            self._queue.clear()
        self._stop(cancel)
