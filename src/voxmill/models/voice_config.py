"""A Piper voice's ``X.onnx.json``: the one parser of it in voxmill (Piper's defaults live in corpus.piper).

The registry parses each voice's config once, at discovery, and hands it on as ``ModelSpec.voice``;
the loader, synth, check and the server read that object, never the file again.
"""

from __future__ import annotations

import hashlib
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.corpus.piper import DEFAULT_LENGTH_SCALE, DEFAULT_NOISE_SCALE, DEFAULT_NOISE_W

__all__ = [
    "DEFAULT_LENGTH_SCALE",
    "DEFAULT_NOISE_SCALE",
    "DEFAULT_NOISE_W",
    "MISSING_CONFIG",
    "VoiceConfig",
    "config_path_for",
]

# A voice's config is tens of kilobytes; anything this large is not one (and must not fill memory).
MAX_CONFIG_BYTES = 32 * 2**20
# Speaker ids go to the model as int64 but index an embedding table: no real voice has millions.
MAX_SPEAKERS = 2**20
MISSING_CONFIG = "{name} is missing: a Piper voice needs its config beside the model"


def config_path_for(onnx: Path) -> Path:
    """Where Piper looks for a voice's config: ``X.onnx`` -> ``X.onnx.json``."""
    return onnx.with_name(onnx.name + ".json")


@dataclass(frozen=True)
class VoiceConfig:
    """What voxmill needs from a Piper ``.onnx.json``; ``raw`` keeps the whole document."""

    sample_rate: int
    espeak_voice: str
    """espeak-ng voice ("en-us", "pt-br", "cmn"); "" when the config names none."""
    language: str
    """Language code for sentence splitting ("en"), from the espeak voice or ``language.code``."""
    phoneme_type: str = "espeak"
    num_speakers: int = 1
    speaker_id_map: dict[str, int] = field(default_factory=dict, compare=False)
    length_scale: float = DEFAULT_LENGTH_SCALE
    noise_scale: float = DEFAULT_NOISE_SCALE
    noise_w: float = DEFAULT_NOISE_W
    locale: str | None = None
    """``language.code`` as written ("en_US"), else the espeak voice."""
    quality: str | None = None
    digest: str = ""
    """sha256 of the file's bytes, 16 hex digits: changes whenever the config does."""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def read(cls, path: str | Path) -> VoiceConfig:
        """Parse ``path``; ModelLoadError naming the file and the reason when it is not a usable config."""
        path = Path(path)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise errors.ModelLoadError(MISSING_CONFIG.format(name=path)) from None
        except OSError as exc:
            raise errors.ModelLoadError(f"{path}: cannot read the voice config: {exc.strerror or exc}") from None
        # A FIFO or device would block or never end: only a regular file can be a config.
        if not stat.S_ISREG(info.st_mode):
            raise errors.ModelLoadError(f"{path}: the voice config is not a regular file")
        if info.st_size > MAX_CONFIG_BYTES:
            raise errors.ModelLoadError(f"{path}: {info.st_size} bytes is too large for a voice config")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise errors.ModelLoadError(f"{path}: cannot read the voice config: {exc.strerror or exc}") from None
        try:
            # utf-8-sig: a BOM (Windows editors write one) is not a reason to refuse a voice.
            raw = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise errors.ModelLoadError(f"{path}: the voice config is not valid JSON: {exc}") from None
        except RecursionError:  # "[[[[..." thousands deep: json's decoder recurses per level
            raise errors.ModelLoadError(f"{path}: the voice config is not valid JSON: nested too deeply") from None
        try:
            return cls.from_dict(raw, digest=hashlib.sha256(data).hexdigest()[:16])
        except ValueError as exc:
            raise errors.ModelLoadError(f"{path}: {exc}") from None

    @classmethod
    def from_dict(cls, raw: Any, digest: str = "") -> VoiceConfig:
        """Validate a parsed config; ValueError saying which field is wrong."""
        if not isinstance(raw, dict):
            raise ValueError("the voice config is not a JSON object")
        audio = _section(raw, "audio")
        espeak = _section(raw, "espeak")
        inference = _section(raw, "inference")
        language_block = _section(raw, "language")
        sample_rate = audio.get("sample_rate")
        if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or not 0 < sample_rate <= 768_000:
            raise ValueError(f"audio.sample_rate must be a positive integer, not {sample_rate!r}")
        espeak_voice = espeak.get("voice") or ""
        code = language_block.get("code")
        if not isinstance(espeak_voice, str) or not isinstance(code, str | None):
            raise ValueError("espeak.voice and language.code must be strings")
        speakers = raw.get("num_speakers", 1) or 1
        if not _is_int(speakers) or speakers < 1:
            raise ValueError(f"num_speakers must be a positive integer, not {speakers!r}")
        if speakers > MAX_SPEAKERS:
            raise ValueError(f"num_speakers must be at most {MAX_SPEAKERS}, not {speakers!r}")
        id_map = raw.get("speaker_id_map") or {}
        # An id the model has no row for fails in onnxruntime at every sentence, not here, once.
        if not isinstance(id_map, dict) or not all(_is_int(v) and 0 <= v < MAX_SPEAKERS for v in id_map.values()):
            raise ValueError("speaker_id_map must map speaker names to integers from 0")
        if speakers > 1 and any(v >= speakers for v in id_map.values()):
            raise ValueError(f"speaker_id_map has ids beyond num_speakers ({speakers})")
        _check_phoneme_id_map(raw.get("phoneme_id_map"))
        phoneme_type = raw.get("phoneme_type", "espeak") or "espeak"
        if not isinstance(phoneme_type, str):
            raise ValueError(f"phoneme_type must be a string, not {phoneme_type!r}")
        quality = audio.get("quality")
        # sentencex wants a language code ("en"); espeak voices are "en-us", "pt-br", "cmn".
        language = (espeak_voice or code or "en").split("-")[0].split("_")[0] or "en"
        return cls(
            sample_rate=sample_rate,
            espeak_voice=espeak_voice,
            language=language,
            phoneme_type=phoneme_type,
            num_speakers=int(speakers),
            speaker_id_map={str(k): int(v) for k, v in id_map.items()},
            length_scale=_scale(inference, "length_scale", DEFAULT_LENGTH_SCALE, positive=True),
            noise_scale=_scale(inference, "noise_scale", DEFAULT_NOISE_SCALE),
            noise_w=_scale(inference, "noise_w", DEFAULT_NOISE_W),
            locale=code or espeak_voice or None,
            quality=quality if isinstance(quality, str) else None,
            digest=digest,
            raw=raw,
        )

    def piper_config(self) -> Any:
        """This config as ``piper.PiperConfig`` (what ``piper.PiperVoice`` takes), scales as parsed here."""
        from piper.config import PiperConfig

        try:
            config = PiperConfig.from_dict(self.raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.ModelLoadError(f"the voice config lacks what Piper needs: {exc!r}") from None
        config.length_scale = self.length_scale
        config.noise_scale = self.noise_scale
        config.noise_w_scale = self.noise_w
        return config


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _section(raw: dict[str, Any], key: str) -> dict[str, Any]:
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key} must be a JSON object, not {type(value).__name__}")
    return value


def _scale(inference: dict[str, Any], key: str, default: float, positive: bool = False) -> float:
    """A scale in [0, 100); ``positive``: above 0 (a length scale of 0 gives every phoneme no time)."""
    value = inference.get(key, default)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value < 100
        or (positive and value == 0)
    ):
        low = "above 0" if positive else "from 0"
        raise ValueError(f"inference.{key} must be a number {low} to 100, not {value!r}")
    return float(value)


def _check_phoneme_id_map(id_map: Any) -> None:
    """Piper looks each phoneme up and feeds the ids to the model: a map of the wrong shape would fail
    on every sentence instead of once, here. Missing is left to Piper's own check at load."""
    if id_map is None:
        return
    if not isinstance(id_map, dict) or not all(
        isinstance(ids, list) and all(_is_int(i) and 0 <= i < 2**31 for i in ids) for ids in id_map.values()
    ):
        raise ValueError("phoneme_id_map must map phonemes to lists of ids (integers from 0)")
