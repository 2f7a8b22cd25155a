"""One loader per model kind: ``load(spec, device, threads) -> model``. Heavy imports happen inside."""

from __future__ import annotations

from typing import Any

from voxmill.models.registry import ModelSpec

__all__ = ["load_model"]


def load_model(spec: ModelSpec, device: str, threads: int) -> Any:
    if spec.kind == "piper":
        from voxmill.models.loaders.piper import load_piper

        return load_piper(spec, device, threads)
    if spec.kind == "whisper":
        from voxmill.models.loaders.whisper import load_whisper

        return load_whisper(spec, device, threads)
    if spec.kind in ("silero-vad", "onnx"):
        from voxmill.models.loaders.onnx import load_onnx

        return load_onnx(spec, device, threads)
    raise ValueError(f"no loader for model kind {spec.kind!r}")
