"""Engine backends: where items run. All share the interface in :mod:`.base`; the process and Ray
backends share one remote-worker state machine (:mod:`.remote`). Concrete backends are imported here,
by the factory, on first use (Ray's only when asked for), so no backend module imports another's."""

from __future__ import annotations

import importlib

from voxmill.engine.backends.base import Backend, Job, JobResult
from voxmill.engine.options import BACKENDS, check_backend
from voxmill.engine.threads import ThreadPlan

__all__ = ["Backend", "Job", "JobResult", "backend_class", "create_backend"]


def backend_class(name: str) -> type[Backend]:
    """The class of backend ``name``: ``XBackend`` in module ``x``, imported now (so Ray's module, and
    ray, load only for a Ray run). ConfigError naming the choices for any other name ("auto" included:
    the application resolves it first, :meth:`~voxmill.engine.RunOptions.backend_or`)."""
    check_backend(name, [choice for choice in BACKENDS if choice != "auto"])
    backend: type[Backend] = getattr(importlib.import_module(f"{__name__}.{name}"), f"{name.capitalize()}Backend")
    return backend


def create_backend(
    name: str,
    plan: ThreadPlan,
    timeout: float | None,
    model_budget: int | None = None,
    device: str = "auto",
    prefetch: int = 2,
    address: str | None = None,
    gpu_budget: int | None = None,
) -> Backend:
    """A backend for one run. ``address``: the Ray cluster to join (``ray`` only; None starts a local Ray)."""
    return backend_class(name)(plan, timeout, model_budget, device, prefetch, address, gpu_budget)
