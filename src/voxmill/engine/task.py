"""The unit of work the engine runs: a picklable :class:`Task` with per-worker ``setup``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Task", "WorkerContext"]


@dataclass(frozen=True)
class WorkerContext:
    """What a worker knows about itself, handed to ``Task.setup``.

    ``threads`` is this worker's share of the cores: give it to onnxruntime (see
    :func:`voxmill.engine.threads.session_options`), BLAS, OpenMP. ``models`` will carry the worker's
    model manager once it exists.
    """

    index: int
    workers: int
    threads: int
    backend: str
    models: Any = None


class Task:
    """Subclass as a dataclass of options; it is pickled to each worker.

    ``setup(ctx)`` runs once per worker before its first item: load models there, not in ``__init__``.
    ``__call__(item)`` returns a value, raises :class:`~voxmill.engine.outcome.Drop` to drop the item,
    or raises anything else to fail it (the run goes on).
    """

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
