"""A Piper voice whose onnxruntime session follows the worker's thread budget and device."""

from __future__ import annotations

import json
from typing import Any

from voxmill.models.loaders.onnx import load_onnx
from voxmill.models.registry import ModelSpec


def load_piper(spec: ModelSpec, device: str, threads: int) -> Any:
    from piper import PiperVoice
    from piper.config import PiperConfig

    # PiperVoice.load() builds its session with default options (all cores, spinning); build our own.
    config_path = spec.config_path or spec.path.with_name(spec.path.name + ".json")
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    return PiperVoice(session=load_onnx(spec, device, threads), config=config)
