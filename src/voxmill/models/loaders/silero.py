"""Silero VAD as a thread-safe detector: one onnxruntime session, recurrent state per stream."""

from __future__ import annotations

from voxmill.audio.vad import SileroDetector
from voxmill.models.devices import session_options
from voxmill.models.loaders.onnx import providers_for
from voxmill.models.registry import ModelSpec


def load_silero(spec: ModelSpec, device: str, threads: int) -> SileroDetector:
    import onnxruntime

    # One thread whatever the budget: a 32-ms step is too small to split, and extra threads only add
    # hand-offs. Threads of a worker share this session, each with its own stream.
    del threads
    session = onnxruntime.InferenceSession(str(spec.path), session_options(1), providers=providers_for(device))
    return SileroDetector(session)
