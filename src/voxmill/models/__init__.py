"""The model manager: the one place voxmill loads models (registry, loaders, leases, budget, monitor).

Imports only leaves. Heavy runtimes (onnxruntime, piper, faster-whisper) load on first use, and the
names below load on first access: engine workers import ``voxmill.models.devices`` for thread
settings and should not pay for the manager, registry and YAML parser they never use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from voxmill.models.budget import ModelStatus
    from voxmill.models.manager import ModelManager
    from voxmill.models.monitor import MemoryMonitor
    from voxmill.models.registry import BrokenModel, ModelSpec, Registry
    from voxmill.models.voice_config import VoiceConfig

__all__ = ["BrokenModel", "MemoryMonitor", "ModelManager", "ModelSpec", "ModelStatus", "Registry", "VoiceConfig"]

__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "budget": ["ModelStatus"],
        "manager": ["ModelManager"],
        "monitor": ["MemoryMonitor"],
        "registry": ["BrokenModel", "ModelSpec", "Registry"],
        "voice_config": ["VoiceConfig"],
    },
)
