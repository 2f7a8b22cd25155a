"""The model manager: the one place voxmill loads models (registry, loaders, leases, budget, monitor).

Imports only leaves. Heavy runtimes (onnxruntime, piper, faster-whisper) load on first use, and the
names below load on first access: engine workers import ``voxmill.models.devices`` for thread
settings and should not pay for the manager, registry and YAML parser they never use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from voxmill.models.manager import ModelManager, ModelStatus
    from voxmill.models.monitor import MemoryMonitor
    from voxmill.models.registry import ModelSpec, Registry

__all__ = ["MemoryMonitor", "ModelManager", "ModelSpec", "ModelStatus", "Registry"]

__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "manager": ["ModelManager", "ModelStatus"],
        "monitor": ["MemoryMonitor"],
        "registry": ["ModelSpec", "Registry"],
    },
)
