"""Streaming audio encoders for the speech route: fed float32 mono chunks, they return the bytes ready
so far, so each sentence goes to the client as soon as it is spoken.

The formats are OpenAI's ``response_format`` values, with OpenAI's content types:

- ``wav``: 16-bit PCM at the voice's rate behind a header whose sizes are 0xFFFFFFFF ("until the end
  of the stream", as OpenAI's and Piper's streaming servers write it); libsndfile, FFmpeg and Python's
  ``wave`` read it to the end of the data.
- ``pcm``: raw 16-bit little-endian mono at 24 kHz (what OpenAI sends), resampled by one streaming
  soxr resampler, so the joins between chunks are seamless.
- ``mp3`` / ``aac`` (ADTS) / ``opus`` (in Ogg, at 48 kHz): PyAV encoding into an in-memory sink that
  is drained after each chunk. The Ogg muxer writes a page every 100 ms of audio instead of every
  second, so a sentence is not held back waiting for the next one.
- ``flac``: encoded chunk by chunk but sent whole at the end. A FLAC header holds the total length;
  a stream cannot go back to fill it in, and libsndfile (``soundfile``) refuses a FLAC whose length
  says "unknown". FLAC is the archival format; every other format streams.
"""

from __future__ import annotations

import contextlib
import io
import struct
from dataclasses import dataclass
from typing import Any

import av  # imported with the server, not on the first request (a few tenths of a second)
import numpy as np

__all__ = ["CONTENT_TYPES", "FORMATS", "PCM_RATE", "Encoder", "encoder_for"]

PCM_RATE = 24_000
CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
FORMATS = tuple(CONTENT_TYPES)


@dataclass(frozen=True)
class _AvFormat:
    container: str
    codec: str
    rate: int | None  # None: the voice's own rate
    options: dict[str, str]
    streamed: bool = True


_AV = {
    "mp3": _AvFormat("mp3", "libmp3lame", None, {}),
    "aac": _AvFormat("adts", "aac", None, {}),
    "opus": _AvFormat("ogg", "libopus", 48_000, {"page_duration": "100000"}),  # microseconds
    "flac": _AvFormat("flac", "flac", None, {}, streamed=False),
}


class Encoder:
    """``feed(samples) -> bytes`` for each chunk (float32 mono in [-1, 1], the voice's rate), then
    ``finish() -> bytes`` once. ``seconds``: audio fed so far."""

    content_type = "application/octet-stream"

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.frames = 0

    @property
    def seconds(self) -> float:
        return self.frames / self.rate

    def feed(self, samples: np.ndarray) -> bytes:
        self.frames += len(samples)
        return self._feed(np.ascontiguousarray(samples, dtype=np.float32))

    def _feed(self, samples: np.ndarray) -> bytes:
        raise NotImplementedError

    def finish(self) -> bytes:
        return b""

    def close(self) -> None:
        """Free what the encoder holds, finished or not (a client that left)."""


def _int16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


class WavEncoder(Encoder):
    content_type = CONTENT_TYPES["wav"]

    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self._header = True

    def _feed(self, samples: np.ndarray) -> bytes:
        head = b""
        if self._header:
            self._header = False
            unknown = 0xFFFFFFFF
            head = (
                b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
                + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, self.rate, self.rate * 2, 2, 16)
                + b"data" + struct.pack("<I", unknown)
            )  # fmt: skip
        return head + _int16(samples)

    def finish(self) -> bytes:
        return self._feed(np.zeros(0, np.float32)) if self._header else b""  # no audio: still a header


class PcmEncoder(Encoder):
    content_type = CONTENT_TYPES["pcm"]

    def __init__(self, rate: int) -> None:
        super().__init__(rate)
        self._stream: Any = None
        if rate != PCM_RATE:
            import soxr

            self._stream = soxr.ResampleStream(rate, PCM_RATE, 1, dtype="float32")

    def _feed(self, samples: np.ndarray) -> bytes:
        if self._stream is not None:
            samples = self._stream.resample_chunk(samples)
        return _int16(samples)

    def finish(self) -> bytes:
        if self._stream is None:
            return b""
        return _int16(self._stream.resample_chunk(np.zeros(0, np.float32), last=True))


class _Sink:
    """Where the muxer writes: bytes collected until drained. Not seekable, so the muxer writes a
    stream (no header rewritten at the end), except for the whole-file formats, which get a BytesIO."""

    def __init__(self) -> None:
        self._data = bytearray()

    def write(self, data: bytes) -> int:
        self._data += data
        return len(data)

    def drain(self) -> bytes:
        out = bytes(self._data)
        self._data.clear()
        return out


class AvEncoder(Encoder):
    def __init__(self, fmt: str, rate: int) -> None:
        super().__init__(rate)
        spec = _AV[fmt]
        self.content_type = CONTENT_TYPES[fmt]
        self._spec = spec
        self._sink = _Sink()
        self._file: Any = self._sink if spec.streamed else io.BytesIO()
        self._container: Any = av.open(self._file, "w", format=spec.container, options=spec.options)
        # PyAV converts each frame to the codec's sample format, rate and frame size as it encodes.
        self._stream: Any = self._container.add_stream(spec.codec, rate=spec.rate or rate, layout="mono")
        self._closed = False

    def _frame(self, samples: np.ndarray) -> Any:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = self.rate
        return frame

    def _feed(self, samples: np.ndarray) -> bytes:
        if samples.size:
            for packet in self._stream.encode(self._frame(samples)):
                self._container.mux(packet)
        return self._sink.drain()

    def finish(self) -> bytes:
        if self._closed:
            return b""
        self._closed = True
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        if self._spec.streamed:
            return self._sink.drain()
        return bytes(self._file.getvalue())

    def close(self) -> None:
        """Free the codec without finishing (a client that left)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):  # the stream is abandoned: nobody to tell
                self._container.close()


def encoder_for(fmt: str, rate: int) -> Encoder:
    """An encoder for OpenAI's ``response_format`` ``fmt`` of mono audio at ``rate``; ValueError for
    an unknown format (the request model allows only :data:`FORMATS`)."""
    if fmt == "wav":
        return WavEncoder(rate)
    if fmt == "pcm":
        return PcmEncoder(rate)
    if fmt in _AV:
        return AvEncoder(fmt, rate)
    raise ValueError(f"unknown audio format {fmt!r}; use one of {', '.join(FORMATS)}")
