"""The unit of work the engine runs: a picklable :class:`Task` with per-worker ``setup``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxmill.models import ModelManager

__all__ = ["Task", "WorkerContext"]


@dataclass(frozen=True)
class WorkerContext:
    """What a worker knows about itself, handed to ``Task.setup``.

    ``threads`` is this worker's share of the cores: give it to onnxruntime (see
    :func:`voxmill.engine.threads.session_options`), BLAS, OpenMP. ``models`` is the worker's own
    :class:`~voxmill.models.ModelManager`, created on first use, whose budget is the run's model
    budget divided among the workers.
    """

    index: int
    workers: int
    threads: int
    backend: str
    model_budget: int | None = None
    device: str = "auto"

    @cached_property
    def models(self) -> ModelManager:
        from voxmill.models import ModelManager

        budget = None if self.model_budget is None else self.model_budget // max(1, self.workers)
        return ModelManager(budget_bytes=budget, threads=self.threads, device=self.device)


class Task:
    """Subclass as a dataclass of options; it is pickled to each worker.

    ``setup(ctx)`` runs once per worker before its first item: load models there, not in ``__init__``.
    ``__call__(item)`` returns a value, raises :class:`~voxmill.engine.outcome.Drop` to drop the item,
    or raises anything else to fail it (the run goes on).
    """

    def preflight(self) -> None:
        """Once, in the parent, before any worker starts: raise here what would fail every item
        (a missing extra: :class:`~voxmill.errors.MissingExtraError`; a model that is not there), so
        the run stops once with one message instead of failing each item."""

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
