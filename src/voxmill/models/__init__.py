"""The model manager: the one place voxmill loads models (registry, loaders, leases, budget, monitor).

Imports only leaves. Heavy runtimes (onnxruntime, piper, faster-whisper) load on first use, and the
names below load on first access: engine workers import ``voxmill.models.devices`` for thread
settings and should not pay for the manager, registry and YAML parser they never use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxmill.models.manager import ModelManager, ModelStatus
    from voxmill.models.monitor import MemoryMonitor
    from voxmill.models.registry import ModelSpec, Registry

__all__ = ["MemoryMonitor", "ModelManager", "ModelSpec", "ModelStatus", "Registry"]

_WHERE = {
    "ModelManager": "voxmill.models.manager",
    "ModelStatus": "voxmill.models.manager",
    "MemoryMonitor": "voxmill.models.monitor",
    "ModelSpec": "voxmill.models.registry",
    "Registry": "voxmill.models.registry",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'voxmill.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
