"""Any ONNX model (Silero VAD included) as an onnxruntime InferenceSession."""

from __future__ import annotations

from typing import Any

from voxmill.models.devices import session_options
from voxmill.models.registry import ModelSpec


def providers_for(device: str) -> list[Any]:
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def load_onnx(spec: ModelSpec, device: str, threads: int) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(str(spec.path), session_options(threads), providers=providers_for(device))
