"""``revoice``: what was said, said again by a Piper voice, in the same time (whisper tiny.en + Piper).

Each chunk (cut in pauses, so words are not split) is transcribed, spoken by the voice, and the
speech is fitted to where the chunk's own speech was (Piper's length_scale), so the timing of the
recording is kept. English only: the ASR model is tiny.en.

Both models are resolved once, in the parent (:meth:`Revoice.resolve`, from the run's voices folder):
an unknown voice is a usage error before any work, and the workers lease the resolved specs from
``ctx.models`` without a registry of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from voxmill import errors
from voxmill.audio import resample
from voxmill.convert.processors.base import ChunkAudio, Processor, check_range
from voxmill.engine import WorkerContext
from voxmill.models.voice_config import DEFAULT_NOISE_SCALE, DEFAULT_NOISE_W

if TYPE_CHECKING:
    from voxmill.models import ModelSpec, Registry

__all__ = ["Revoice"]

SPEECH_DB = -40.0  # hops above this level are where the original speaker spoke


def _speech_span(samples: np.ndarray, sr: int) -> tuple[int, int] | None:
    hop = max(1, sr // 100)
    count = samples.shape[0] // hop
    frames = samples[: count * hop].reshape(count, hop)
    loud = np.flatnonzero(np.einsum("ij,ij->i", frames, frames) / hop > 10 ** (SPEECH_DB / 10))
    if loud.size == 0:
        return None
    return int(loud[0]) * hop, (int(loud[-1]) + 1) * hop


@dataclass
class Revoice(Processor):
    """Re-speak each chunk with Piper ``voice``; ``noise_scale``/``noise_w`` as in Piper (0 = deterministic)."""

    voice: str = "en_US-joe-medium"
    asr: str = "tiny.en"
    noise_scale: float = DEFAULT_NOISE_SCALE
    noise_w: float = DEFAULT_NOISE_W
    # Resolved in the parent (resolve), pickled to the workers with the processor: not options.
    voice_model: ModelSpec | None = field(default=None, init=False, repr=False, compare=False)
    asr_model: ModelSpec | None = field(default=None, init=False, repr=False, compare=False)

    name: ClassVar[str] = "revoice"
    releases_gil: ClassVar[bool] = True  # onnxruntime and CTranslate2 run without the GIL
    channels: ClassVar[str] = "mono"  # one voice speaks again: there is one channel to say it in
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("faster_whisper", "asr"),)

    def __post_init__(self) -> None:
        check_range("noise_scale", self.noise_scale, 0, 2)
        check_range("noise_w", self.noise_w, 0, 2)

    def resolve(self, registry: Registry) -> None:
        # An unknown voice or ASR model is a usage error found now, not a failure of every chunk
        # (which kept each chunk's original audio and exited 0).
        try:
            self.voice_model = registry.resolve(self.voice, kind="piper")
            self.asr_model = registry.resolve(self.asr, kind="whisper")
        except errors.ModelError as exc:
            raise errors.ConfigError(f"--processor revoice: {exc}") from None

    def setup(self, ctx: WorkerContext) -> None:
        if self.voice_model is None or self.asr_model is None:
            raise RuntimeError("Revoice.resolve(registry) must run (in the parent) before the workers start")
        self._models = ctx.models
        self._asr: ModelSpec = self.asr_model
        self._voice: ModelSpec = self.voice_model

    def _speak(self, voice: Any, text: str, length_scale: float) -> tuple[np.ndarray, int]:
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=length_scale, noise_scale=self.noise_scale, noise_w_scale=self.noise_w)
        parts = list(voice.synthesize(text, syn_config=config))
        rate = parts[0].sample_rate if parts else voice.config.sample_rate
        if not parts:
            return np.zeros(0, np.float32), rate
        return np.concatenate([p.audio_float_array for p in parts]).astype(np.float32), rate

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        sr = chunk.sample_rate
        core = chunk.core
        span = _speech_span(core, sr)
        silence = np.zeros(chunk.samples.shape[0], np.float32)
        if span is None:
            return silence, sr
        with self._models.lease(self._asr) as model:
            segments, _ = model.transcribe(resample(core, sr, 16000), language="en", beam_size=1)
            text = " ".join(s.text.strip() for s in segments).strip()
        if not text:
            return silence, sr
        with self._models.lease(self._voice) as voice:
            spoken, rate = self._speak(voice, text, 1.0)
            target = (span[1] - span[0]) / sr
            if spoken.size and target > 0:
                # Piper's duration scales with length_scale: one more pass lands on the original timing.
                scale = float(np.clip(target / (spoken.shape[0] / rate), 0.5, 2.0))
                spoken, rate = self._speak(voice, text, scale)
        out = np.zeros(round(chunk.samples.shape[0] * rate / sr), np.float32)
        at = round((chunk.pad_left + span[0]) * rate / sr)
        fitted = spoken[: max(0, out.shape[0] - at)]
        out[at : at + fitted.shape[0]] = fitted
        return out, rate
