"""The transcription side of the Wyoming server: one ``transcribe`` request's audio in, its text out.

The client's audio arrives in chunks of any rate, width and channel count; each chunk is brought to
16-bit mono 16 kHz (what Whisper takes) as it arrives, through one streaming resampler per request.
Kept at the client's own rate, 300 s of 192 kHz audio held 115 MB per connection; at 16 kHz it is at
most 9.6 MB, and ``audio-stop`` only has a short resampler tail to flush before decoding. The decode is
admitted and run on the scheduler like an HTTP transcription, under a lease of its model.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import soxr

from voxmill import errors
from voxmill.models import ModelSpec
from voxmill.server.scheduler import run_on
from voxmill.server.state import ServerState
from voxmill.server.wyoming_events import Code, WyomingError

try:
    from wyoming.audio import AudioChunk, AudioChunkConverter
except ImportError:  # pragma: no cover - the server extra brings it
    raise errors.MissingExtraError("wyoming", "server") from None

__all__ = ["AsrAudio", "Listening", "can_transcribe"]

MAX_ASR_SECONDS = 300.0
CLIP_SECONDS = 28.0  # transcribe_clip's one-window limit
ASR_RATE = 16000
MAX_ASR_BYTES = int(ASR_RATE * 2 * MAX_ASR_SECONDS)  # 9.6 MB of 16-bit 16 kHz audio


def can_transcribe() -> bool:
    """Whether faster-whisper is installed: without it ``describe`` offers no ASR."""
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return False
    return True


class AsrAudio:
    """Audio chunks at ``rate`` (any width and channels) in; 16-bit mono 16 kHz kept in ``pcm``.

    Width and channels go through wyoming's own converter; the rate through soxr's streaming resampler
    (the quality :func:`voxmill.audio.resample.resample` uses), whose state carries across chunks, so
    the result matches resampling the whole recording at once."""

    def __init__(self, rate: int) -> None:
        self.pcm = bytearray()
        self._mono = AudioChunkConverter(rate=rate, width=2, channels=1)
        self._resampler = (
            None if rate == ASR_RATE else soxr.ResampleStream(rate, ASR_RATE, 1, dtype="float32", quality="HQ")
        )

    def add(self, chunk: AudioChunk) -> None:
        mono = self._mono.convert(chunk).audio
        if self._resampler is None:
            self.pcm += mono
            return
        samples = np.frombuffer(mono, "<i2").astype(np.float32) / 32768.0
        self._keep(self._resampler.resample_chunk(samples))

    def finish(self) -> bytearray:
        """All the audio, the resampler's tail included; call once, after the last chunk."""
        if self._resampler is not None:
            self._keep(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            self._resampler = None
        return self.pcm

    def _keep(self, samples: np.ndarray) -> None:
        self.pcm += (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class Listening:
    """One ``transcribe`` request: its model and language, then its audio, kept at 16 kHz as it arrives."""

    def __init__(self, state: ServerState, spec: ModelSpec, language: str | None) -> None:
        self.state = state
        self.spec = spec
        self.language = language.replace("_", "-").split("-")[0].lower() if language else None
        if self.language and spec.language and self.language != spec.language:
            raise WyomingError(Code.BAD_REQUEST, f"language {language!r}: {spec.name} only transcribes "
                               f"{spec.language!r}")  # fmt: skip
        self.rate: int | None = None
        self._audio: AsrAudio | None = None

    def start(self, data: dict[str, Any]) -> AsrAudio:
        self.rate, _, _ = _audio_format(data)
        self._audio = AsrAudio(self.rate)
        return self._audio

    def add(self, data: dict[str, Any], payload: bytes) -> None:
        rate, width, channels = _audio_format(data)
        audio = self._audio or self.start(data)  # no audio-start: the first chunk says the format
        if rate != self.rate:
            raise WyomingError(Code.BAD_AUDIO_FORMAT, f"audio-chunk: rate {rate} after audio-start's {self.rate}")
        if len(payload) % (width * channels):
            raise WyomingError(Code.BAD_AUDIO_FORMAT, f"audio-chunk: {len(payload)} bytes is not whole frames of "
                               f"{width * channels} bytes")  # fmt: skip
        audio.add(AudioChunk(rate=rate, width=width, channels=channels, audio=payload))
        if len(audio.pcm) > MAX_ASR_BYTES:  # counted at 16 kHz, whatever the client's rate
            raise WyomingError(Code.AUDIO_TOO_LONG, f"audio: over the limit of {MAX_ASR_SECONDS:g} s")

    async def transcribe(self) -> tuple[str, str | None]:
        """The text of the audio received (admitted and decoded on the scheduler)."""
        language = self.language or self.spec.language
        audio, self._audio = self._audio, None
        pcm = audio.finish() if audio is not None else bytearray()
        if not pcm:
            return "", language
        state, spec = self.state, self.spec
        with state.scheduler.admit("whisper") as arrival:
            async with state.leased(spec) as model:
                text = await run_on(state.scheduler, arrival, partial(_decode, model, pcm, self.language))
        state.record_audio(spec.name, len(pcm) / 2 / ASR_RATE)
        return text, language


def _decode(model: Any, pcm: bytearray, language: str | None) -> str:
    from voxmill.models.asr import AsrOptions, transcribe, transcribe_clip

    samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
    options = AsrOptions(language=language)
    if samples.size <= CLIP_SECONDS * ASR_RATE:
        return transcribe_clip(model, samples, options)
    return transcribe(model, samples, options).text


def _audio_format(data: dict[str, Any]) -> tuple[int, int, int]:
    values = [data.get(key) for key in ("rate", "width", "channels")]
    rate, width, channels = (v if isinstance(v, int) and not isinstance(v, bool) else -1 for v in values)
    if not (8000 <= rate <= 192_000 and 1 <= width <= 4 and 1 <= channels <= 8):
        raise WyomingError(Code.BAD_AUDIO_FORMAT, f"audio format rate={values[0]!r} width={values[1]!r} "
                           f"channels={values[2]!r}: expected 8000-192000 Hz, 1-4 bytes, 1-8 channels")  # fmt: skip
    return rate, width, channels
