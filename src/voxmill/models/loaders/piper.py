"""A Piper voice whose onnxruntime session follows the worker's thread budget and device."""

from __future__ import annotations

from typing import Any

from voxmill.models.devices import session_options
from voxmill.models.loaders.onnx import load_onnx, providers_for
from voxmill.models.loaders.vits import load_vits
from voxmill.models.registry import ModelSpec
from voxmill.models.voice_config import VoiceConfig, config_path_for


def load_piper(spec: ModelSpec, device: str, threads: int) -> Any:
    from piper import PiperVoice

    # The registry parsed the config into spec.voice; only a spec built by hand comes without it.
    voice = spec.voice or VoiceConfig.read(spec.config_path or config_path_for(spec.path))
    # PiperVoice.load() builds its session with default options (all cores, spinning); build our own.
    # On CPU the voice runs split and windowed (see loaders/vits.py: bounded memory, faster convolutions,
    # the same samples); a GPU has the memory and runs 1-D convolutions well, so it gets the plain graph.
    if device.startswith("cuda"):
        session = load_onnx(spec, device, threads)
    else:
        session = load_vits(spec.path, session_options(threads), providers_for(device))
    return PiperVoice(session=session, config=voice.piper_config())
