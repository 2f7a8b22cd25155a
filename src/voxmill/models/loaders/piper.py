"""A Piper voice whose onnxruntime session follows the worker's thread budget and device."""

from __future__ import annotations

import json
from typing import Any

from voxmill.models.devices import session_options
from voxmill.models.loaders.onnx import load_onnx, providers_for
from voxmill.models.loaders.vits import load_vits
from voxmill.models.registry import ModelSpec


def load_piper(spec: ModelSpec, device: str, threads: int) -> Any:
    from piper import PiperVoice
    from piper.config import PiperConfig

    # PiperVoice.load() builds its session with default options (all cores, spinning); build our own.
    config_path = spec.config_path or spec.path.with_name(spec.path.name + ".json")
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    # On CPU the voice runs split and windowed (see loaders/vits.py: bounded memory, faster convolutions,
    # the same samples); a GPU has the memory and runs 1-D convolutions well, so it gets the plain graph.
    if device.startswith("cuda"):
        session = load_onnx(spec, device, threads)
    else:
        session = load_vits(spec.path, session_options(threads), providers_for(device))
    return PiperVoice(session=session, config=config)
