"""faster-whisper (CTranslate2) with cpu_threads from the budget."""

from __future__ import annotations

from typing import Any

from voxmill import errors
from voxmill.models.registry import ModelSpec


def load_whisper(spec: ModelSpec, device: str, threads: int) -> Any:
    try:
        from faster_whisper import WhisperModel
    except ImportError:
        raise errors.MissingExtraError("faster-whisper", "asr") from None
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        return WhisperModel(str(spec.path), device="cuda", device_index=index, compute_type="float16")
    return WhisperModel(str(spec.path), device="cpu", compute_type="int8", cpu_threads=max(1, threads))
