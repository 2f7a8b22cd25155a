"""The unit of work the engine runs: a picklable :class:`Task` with per-worker ``setup``.

The engine runs any picklable callable, as ``multiprocessing.Pool.imap`` does: :func:`as_task` wraps a
plain function (or a ``functools.partial``) in :class:`FunctionTask`.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from voxmill.models import ModelManager

__all__ = ["FunctionTask", "ModelSlot", "Task", "WorkerContext", "as_task"]


class ModelSlot:
    """One :class:`~voxmill.models.ModelManager`, created on first use, for every worker context given
    this slot: the thread and serial backends give all their workers one slot (one manager per process,
    so threads share each loaded model: an onnxruntime session runs concurrent calls safely); the process
    and Ray backends give each worker process its own. Pickles without its manager."""

    def __init__(self, budget: int | None, threads: int, device: str, gpu_budget: int | None = None) -> None:
        self.budget = budget
        self.gpu_budget = gpu_budget
        self.threads = threads
        self.device = device
        self._manager: ModelManager | None = None
        self._lock = threading.Lock()

    def get(self) -> ModelManager:
        with self._lock:
            if self._manager is None:
                from voxmill.models import ModelManager

                self._manager = ModelManager(
                    budget_bytes=self.budget, gpu_budget_bytes=self.gpu_budget, threads=self.threads, device=self.device
                )
            return self._manager

    def close(self) -> None:
        """Unload the models no one holds (the run is over); a later ``get`` starts a fresh manager."""
        with self._lock:
            manager, self._manager = self._manager, None
        if manager is not None:
            manager.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"budget": self.budget, "threads": self.threads, "device": self.device, "gpu": self.gpu_budget}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["budget"], state["threads"], state["device"], state["gpu"])  # type: ignore[misc]


@dataclass(frozen=True)
class WorkerContext:
    """What a worker knows about itself, handed to ``Task.setup``.

    ``threads`` is this worker's share of the cores: give it to onnxruntime (see
    :func:`voxmill.engine.threads.session_options`), BLAS, OpenMP. ``models`` is the
    :class:`~voxmill.models.ModelManager` of the worker's process, created on first use: thread (and
    serial) workers share one, holding the run's whole model budget; each worker process (process, Ray)
    has its own, with the budget divided among the workers.
    """

    index: int
    workers: int
    threads: int
    backend: str
    model_budget: int | None = None
    device: str = "auto"
    slot: ModelSlot | None = field(default=None, compare=False, repr=False)
    gpu_budget: int | None = None

    def __post_init__(self) -> None:
        if self.slot is None:  # a context of its own (a test, a caller running a task by hand)
            share = max(1, self.workers)
            budget = None if self.model_budget is None else self.model_budget // share
            gpu = None if self.gpu_budget is None else self.gpu_budget // share
            object.__setattr__(self, "slot", ModelSlot(budget, self.threads, self.device, gpu))

    @property
    def models(self) -> ModelManager:
        assert self.slot is not None  # set in __post_init__
        return self.slot.get()


def require_extras(requires: tuple[tuple[str, str], ...]) -> None:
    """MissingExtraError for the first ``(module, extra)`` whose module is not installed: the one
    check of optional dependencies, run once in the parent (a task's or a processor's preflight)."""
    from voxmill.errors import MissingExtraError

    for module, extra in requires:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(module, extra)


class Task:
    """Subclass as a dataclass of options; it is pickled to each worker.

    ``setup(ctx)`` runs once per worker before its first item: load models there, not in ``__init__``.
    ``__call__(item)`` returns a value, raises :class:`~voxmill.engine.outcome.Drop` to drop the item,
    or raises anything else to fail it (the run goes on).
    """

    requires: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(module, extra) pairs: the optional modules the task imports and the extra that installs each."""

    def preflight(self) -> None:
        """Once, in the parent, before any worker starts: raise here what would fail every item
        (a missing extra: :class:`~voxmill.errors.MissingExtraError`, checked from ``requires``; a model
        that is not there), so the run stops once with one message instead of failing each item."""
        require_extras(self.requires)

    def setup(self, ctx: WorkerContext) -> None:
        """Once per worker, before its first item."""

    def __call__(self, item: Any) -> Any:
        raise NotImplementedError

    def audio_seconds(self, item: Any, value: Any) -> float | None:
        """Seconds of audio this item represents, for the audio-seconds/s throughput figure."""
        seconds = getattr(value, "audio_seconds", None)
        return float(seconds) if isinstance(seconds, (int, float)) else None

    def teardown(self) -> None:
        """Once per worker when it stops cleanly."""


@dataclass
class FunctionTask(Task):
    """A plain callable run as a Task: ``fn(item)`` per item, no setup. ``fn`` must pickle (a module-level
    function, a ``functools.partial`` of one) for the process and Ray backends."""

    fn: Callable[[Any], Any]

    def __call__(self, item: Any) -> Any:
        return self.fn(item)


def as_task(fn: Task | Callable[[Any], Any]) -> Task:
    """``fn`` itself when it is a Task, else ``fn`` wrapped in a :class:`FunctionTask`."""
    if isinstance(fn, Task):
        return fn
    if not callable(fn):
        raise TypeError(f"expected a Task or a callable, got {type(fn).__name__}")
    return FunctionTask(fn)
