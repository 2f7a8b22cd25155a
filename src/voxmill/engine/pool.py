"""The parallel runner every voxmill application uses: bounded, ordered or not, crash-safe, resumable."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voxmill.engine.backends import Backend, Job, JobResult, backend_class, create_backend
from voxmill.engine.options import BACKENDS, LOCAL_BACKENDS, RunOptions, check_number, parse_timeout
from voxmill.engine.outcome import Outcome
from voxmill.engine.sharing import inline_arrays
from voxmill.engine.task import Task, as_task
from voxmill.engine.threads import ThreadPlan, plan, usable_cores
from voxmill.errors import ConfigError

if TYPE_CHECKING:
    from voxmill.engine.journal import Journal

__all__ = ["BACKENDS", "Pool"]


@dataclass
class Pool:
    """Runs a :class:`Task` (or any picklable callable) over items on ``workers`` workers of ``backend``.

    ``workers``: a count or ``"auto"`` (usable cores); on this machine never more than the items nor
    than a few per usable core (:func:`~voxmill.engine.threads.plan`), and worker processes and threads
    start only as items arrive. Bad values raise ConfigError (:class:`~voxmill.engine.RunOptions`).
    ``threads_per_worker``: native threads each worker may use, ``"auto"`` = max(1, cores // workers).
    ``window``: most items pulled from the input and not yet yielded (default 2 x workers); memory
    stays bounded however long the input. ``progress``: None shows a bar when stderr is a terminal.
    ``model_budget``: bytes of models all workers together may hold (thread workers share one
    ``ctx.models`` with all of it; each worker process gets an equal share); ``gpu_budget``: the
    same for GPU memory per device; ``device``: where those models run (auto, cpu, cuda).
    ``prefetch``: items sent ahead to each worker process: 2 keeps short items flowing between round
    trips; 1 for long items, so none waits behind another while a worker sits idle. ``address``: the
    Ray cluster for ``backend="ray"`` (``auto``, ``HOST:PORT``; None starts a local Ray with this
    machine's cores, kept for the rest of the process). With Ray,
    ``workers="auto"`` is the cluster's CPUs / threads per worker, and every path an item names must be
    visible on every node. ``plan``: the :class:`ThreadPlan` of the current (or last) run, set when
    :meth:`imap` is called: what a result reports, never a second Pool.
    """

    workers: int | str = "auto"
    backend: str = "process"
    threads_per_worker: int | str = "auto"
    window: int | None = None
    progress: bool | None = None
    description: str = "working"
    model_budget: int | None = None
    device: str = "auto"
    prefetch: int = 2
    address: str | None = None
    gpu_budget: int | None = None
    plan: ThreadPlan | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        # The one validation of run options (ConfigError naming the option), now, not at the first item.
        # validate() normalises ("3" -> 3): keep its values, or Ray would plan with the strings.
        options = self.options.validate()
        self.workers, self.threads_per_worker = options.workers, options.threads_per_worker
        self.backend = options.backend_or("process")
        # window=0 would silently mean the default, a float or a string fail later with a TypeError.
        if self.window is not None:
            check_number("window", self.window, 1, math.inf, integer=True)
        check_number("prefetch", self.prefetch, 1, math.inf, integer=True)

    @classmethod
    def from_options(cls, options: RunOptions, **settings: Any) -> Pool:
        """A pool for an application's :class:`RunOptions`; ``settings``: the other fields (window, ...),
        and any of the options' own given again (``progress=False``), which win."""
        fields: dict[str, Any] = {
            "workers": options.workers,
            "backend": options.backend,
            "threads_per_worker": options.threads_per_worker,
            "progress": options.progress,
            "address": options.address,
            "model_budget": options.budget,
            "gpu_budget": options.gpu_budget,
            "device": options.device,
        }
        return cls(**{**fields, **settings})  # not cls(**fields, **settings): a TypeError for progress=

    @property
    def options(self) -> RunOptions:
        return RunOptions(
            self.workers,
            self.backend,
            self.address,
            self.threads_per_worker,
            None,
            self.progress,
            self.model_budget,
            self.device,
            self.gpu_budget,
        )

    def plan_for(self, total: int | None) -> ThreadPlan:
        local = self.backend in LOCAL_BACKENDS
        if self.backend == "ray" and self.workers == "auto":
            from voxmill.engine.backends.ray import cluster_cpus, connect

            connect(self.address, usable_cores())
            threads = self.threads_per_worker if isinstance(self.threads_per_worker, int) else 1
            return plan(max(1, cluster_cpus() // threads), threads, items=total, local=False, backend="ray")
        # Serial runs every item in the calling thread: one worker, whatever was asked.
        workers = 1 if self.backend == "serial" else self.workers
        return plan(workers, self.threads_per_worker, items=total, local=local, backend=self.backend)

    def imap(
        self,
        task: Task | Callable[[Any], Any],
        items: Iterable[Any],
        ordered: bool = True,
        journal: Journal | None = None,
        timeout: float | None = None,
        key: Callable[[Any], str] | None = None,
        total: int | None = None,
    ) -> Iterator[Outcome]:
        """Yield one :class:`Outcome` per item: in input order (``ordered``) or as items finish.

        ``task``: a :class:`Task`, or any picklable callable (a module-level function, a
        ``functools.partial``), run as ``task(item)``. ``task.preflight()`` runs once, here in the
        parent, at the first ``next()``, before any worker starts: what it raises (a missing extra)
        propagates from there, and no item is run or failed. Items are pulled lazily. With a
        ``journal``, items it records as finished are not run again: their recorded outcome is
        yielded with ``resumed=True``. ``key(item)`` gives the journal id (default: the item's
        position). ``timeout`` fails an item that runs longer.
        """
        timeout = parse_timeout(timeout)
        if total is not None:  # "5" was a TypeError from the bar, -1 a "3/-1" bar
            check_number("total", total, 0, math.inf, integer=True)
        if total is None and isinstance(items, Sized):
            total = len(items)
        return _Run(self, as_task(task), items, ordered, journal, timeout, key, total).outcomes()

    def map(self, task: Task | Callable[[Any], Any], items: Iterable[Any], **options: Any) -> list[Outcome]:
        """All outcomes as a list, in input order."""
        return list(self.imap(task, items, **options))


class _Run:
    """State of one imap call: the reorder buffer, the window, the backend's lifetime."""

    def __init__(
        self,
        pool: Pool,
        task: Task,
        items: Iterable[Any],
        ordered: bool,
        journal: Journal | None,
        timeout: float | None,
        key: Callable[[Any], str] | None,
        total: int | None,
    ) -> None:
        self.pool = pool
        self.task = task
        self.items = iter(enumerate(items))
        self.ordered = ordered
        self.journal = journal
        self.key = key
        self.total = total
        self.plan = pool.plan = pool.plan_for(total)
        self.window = pool.window or 2 * self.plan.workers
        self.timeout = timeout
        self.backend: Backend | None = None
        self.pending: dict[int, tuple[str, Any]] = {}  # pulled, not yet yielded
        self.finished: dict[int, Outcome] = {}  # ready to yield (ordered mode waits for its turn)
        self.next_index = 0
        self.exhausted = False

    def _backend(self) -> Backend:
        # Started on first need: a fully resumed run never spawns a worker.
        if self.backend is None:
            self.backend = create_backend(
                self.pool.backend,
                self.plan,
                self.timeout,
                self.pool.model_budget,
                self.pool.device,
                self.pool.prefetch,
                self.pool.address,
                self.pool.gpu_budget,
            )
            self.backend.start(self.task)
        return self.backend

    def _fill(self) -> None:
        while not self.exhausted and len(self.pending) < self.window:
            try:
                index, item = next(self.items)
            except StopIteration:
                self.exhausted = True
                return
            item_id = self.key(item) if self.key else str(index)
            if not isinstance(item_id, str) or not item_id:
                # A journal keys by text: None (or 5) was recorded but never found again, so a
                # resumed run silently ran everything again.
                raise ConfigError(f"key(item) gave {item_id!r} for item {index}: expected a non-empty string")
            self.pending[index] = (item_id, item)
            recorded = self.journal.lookup(item_id) if self.journal else None
            if recorded is not None:
                result, seconds, audio = recorded
                self.finished[index] = Outcome(index, item_id, item, result, seconds, audio, resumed=True)
            else:
                self._backend().submit(Job(index, item))

    def _accept(self, result: JobResult) -> None:
        item_id, item = self.pending[result.seq]
        outcome = Outcome(result.seq, item_id, item, result.result, result.seconds, result.audio_seconds)
        if self.journal is not None:
            self.journal.record(outcome)  # durable before anyone sees it
        self.finished[result.seq] = outcome

    def _ready(self) -> Iterator[Outcome]:
        if self.ordered:
            while self.next_index in self.finished:
                outcome = self.finished.pop(self.next_index)
                del self.pending[self.next_index]
                self.next_index += 1
                yield outcome
        else:
            while self.finished:
                index = next(iter(self.finished))
                outcome = self.finished.pop(index)
                del self.pending[index]
                yield outcome

    def outcomes(self) -> Iterator[Outcome]:
        # rich loads here, in the parent only: spawned workers import this module and never draw a bar.
        from voxmill.engine.progress import RunProgress

        self.task.preflight()  # before anything starts: one error for the run, not one per item
        clean = False
        progress = RunProgress(self.pool.description, self.total, self.pool.progress)
        # Arrays shared while this run goes (its input's, too) travel the way its backend carries them.
        try:
            with progress, inline_arrays(backend_class(self.pool.backend).inline_arrays):
                while True:
                    self._fill()
                    yielded = False
                    for outcome in self._ready():
                        progress.advance(outcome)
                        yield outcome
                        yielded = True
                        self._fill()
                    if self.exhausted and not self.pending:
                        break
                    if not yielded:
                        for result in self._backend().poll(timeout=None):
                            self._accept(result)
            clean = True
        finally:
            if self.backend is not None:
                # Any exit but a clean finish (Ctrl-C, an error, the caller stopping early) cancels.
                self.backend.close(cancel=not clean or sys.exc_info()[0] is not None)
