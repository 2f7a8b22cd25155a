"""How big a model is: estimates before loading, measurements after, remembered process-wide."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import threading

import psutil

from voxmill.models.registry import ModelSpec

__all__ = ["estimate", "remember", "rss", "trim_heap"]

# Resident bytes per byte on disk before a model has been measured once. They cover more than the
# weights: measured here, a Piper voice's inference arena adds ~60% of its file size, and faster-whisper
# peaks ~40% above its resident size while loading and grows again while transcribing.
ESTIMATE_FACTOR = {"piper": 2.2, "whisper": 3.2, "silero-vad": 4.0, "onnx": 2.2}
ESTIMATE_OVERHEAD = 16 * 2**20  # session and runtime bookkeeping, whatever the model's size

# Measured sizes per (model, cpu|cuda), shared by every manager in the process: a size is a property
# of the model and the runtime, and a later manager's reload into reused heap would measure too small.
_MEASURED: dict[tuple[str, str], int] = {}
_MEASURED_LOCK = threading.Lock()


def estimate(spec: ModelSpec, device: str) -> int:
    """Bytes to reserve for ``spec`` on ``device``: the calibrated estimate, or more if measured more."""
    with _MEASURED_LOCK:
        known = _MEASURED.get((spec.name, "cuda" if device.startswith("cuda") else "cpu"))
    guess = int(spec.size_bytes * ESTIMATE_FACTOR.get(spec.kind, 2.2)) + ESTIMATE_OVERHEAD
    return max(guess, known or 0)


def remember(name: str, device: str, size: int) -> int:
    """Record a measured size; returns the size to account, the largest seen for this model.

    A reload into heap that an evicted model left behind measures small; trusting that would
    let two models in where only one fits.
    """
    key = (name, "cuda" if device.startswith("cuda") else "cpu")
    with _MEASURED_LOCK:
        _MEASURED[key] = max(size, _MEASURED.get(key, 0))
        return _MEASURED[key]


def trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc keeps them otherwise, and RSS would not drop)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss() -> int:
    return int(psutil.Process().memory_info().rss)
