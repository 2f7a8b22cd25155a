"""The model manager: the one place voxmill loads models (registry, loaders, leases, budget, monitor).

Imports only leaves. Heavy runtimes (onnxruntime, piper, faster-whisper) load on first use.
"""

from voxmill.models.manager import ModelManager, ModelStatus
from voxmill.models.monitor import MemoryMonitor
from voxmill.models.registry import ModelSpec, Registry

__all__ = ["MemoryMonitor", "ModelManager", "ModelSpec", "ModelStatus", "Registry"]
