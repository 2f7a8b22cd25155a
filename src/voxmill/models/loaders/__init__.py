"""One loader per model kind: ``load(spec, device, threads) -> model``. Heavy imports happen inside.

What a lease yields: piper -> ``piper.PiperVoice``; whisper -> ``faster_whisper.WhisperModel``;
silero-vad -> ``audio.vad.SileroDetector`` (thread-safe); onnx -> ``onnxruntime.InferenceSession``.
"""

from __future__ import annotations

from typing import Any

from voxmill import errors
from voxmill.models.registry import ModelSpec

__all__ = ["load_model", "model_note"]


def load_model(spec: ModelSpec, device: str, threads: int) -> Any:
    # The spec was made when its file was checked; if it became a FIFO (or a device) since, onnxruntime
    # would block on it forever, or read /dev/zero until memory runs out.
    if spec.kind != "whisper" and spec.path.exists() and not spec.path.is_file():
        raise errors.ModelLoadError(f"{spec.name}: {spec.path} is not a regular file")
    if spec.kind == "piper":
        from voxmill.models.loaders.piper import load_piper

        return load_piper(spec, device, threads)
    if spec.kind == "whisper":
        from voxmill.models.loaders.whisper import load_whisper

        return load_whisper(spec, device, threads)
    if spec.kind == "silero-vad":
        from voxmill.models.loaders.silero import load_silero

        return load_silero(spec, device, threads)
    if spec.kind == "onnx":
        from voxmill.models.loaders.onnx import load_onnx

        return load_onnx(spec, device, threads)
    raise ValueError(f"no loader for model kind {spec.kind!r}")


def model_note(spec: ModelSpec, device: str) -> str | None:
    """What a user should know about how ``spec`` runs here (a voice that could not be split, and why)."""
    if spec.kind == "piper" and not device.startswith("cuda"):
        from voxmill.models.loaders.vits import split_note

        return split_note(spec.path)
    return None
