"""Put processed chunks back on one timeline and stream them to a file, without seams.

Each chunk is placed by its absolute position (converted to the output rate), so the output is as
long as the input whatever a processor did to the length. Joins in pauses are plain; joins forced
inside speech get an equal-power crossfade over both chunks' context, which both processed. With a
ceiling, everything written passes one streaming look-ahead limiter (audio/limiter.py): a processor
that overshoots full scale is never clipped, and the limiter runs over the joins like anywhere else.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import TracebackType

import numpy as np

from voxmill.audio.io import open_writer
from voxmill.audio.limiter import PeakLimiter

__all__ = ["Stitcher", "to_rate"]


def to_rate(position: int, from_rate: int, to_rate_: int) -> int:
    """A sample position at another rate (rounded): the same instant on both timelines."""
    return position if from_rate == to_rate_ else round(position * to_rate_ / from_rate)


def _take(samples: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``samples[lo:hi]`` with zeros where the range runs off either end."""
    out = np.zeros((max(0, hi - lo), *samples.shape[1:]), dtype=np.float32)
    a, b = max(lo, 0), min(hi, samples.shape[0])
    if b > a:
        out[a - lo : b - lo] = samples[a:b]
    return out


class Stitcher:
    """Streams chunks, given in order, to ``path`` at ``sample_rate``; atomic like every voxmill output.

    ``add(start, end, ...)`` takes the chunk's own span in input samples (``in_rate``) and its
    processed samples at ``sample_rate`` (``(frames,)``, or ``(frames, channels)``), with ``pad_left``
    output samples of context before ``start``. ``ceiling_db`` (None: off) limits every sample to it.
    """

    def __init__(
        self,
        path: str | Path,
        sample_rate: int,
        in_rate: int,
        crossfade_ms: float = 10.0,
        subtype: str | None = None,
        channels: int = 1,
        ceiling_db: float | None = None,
    ) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.in_rate = in_rate
        self.half = max(1, round(crossfade_ms * sample_rate / 1000) // 2)
        self.subtype = subtype
        self.channels = channels
        self.written = 0
        self.joins: list[int] = []  # output positions where one chunk meets the next
        self.limiter = PeakLimiter(sample_rate, ceiling_db) if ceiling_db is not None else None
        self._tail: np.ndarray | None = None  # the previous chunk's samples around a forced cut
        self._writer = open_writer(self.path, sample_rate, channels, subtype)
        self._file = None
        theta = (np.arange(2 * self.half, dtype=np.float64) + 0.5) / (2 * self.half) * (math.pi / 2)
        shape = (-1,) if channels == 1 else (-1, 1)  # fades broadcast over the channels
        self._fade_in = np.sin(theta).astype(np.float32).reshape(shape)
        self._fade_out = np.cos(theta).astype(np.float32).reshape(shape)

    def __enter__(self) -> Stitcher:
        self._file = self._writer.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self._writer.__exit__(kind, exc, tb)

    def add(
        self, start: int, end: int, samples: np.ndarray, pad_left: int, forced_start: bool, forced_end: bool
    ) -> None:
        if self._file is None:
            raise RuntimeError("Stitcher.add outside its with-block")
        s = to_rate(start, self.in_rate, self.sample_rate)
        e = to_rate(end, self.in_rate, self.sample_rate)
        if s != self.written + (self.half if self._tail is not None else 0):
            raise ValueError(f"chunk at {start} does not follow the previous one (expected output {self.written})")
        h = self.half
        local = pad_left - s  # index in ``samples`` of output position 0
        if s > 0:
            self.joins.append(s)
        if self._tail is not None:
            if forced_start:
                mine = _take(samples, local + s - h, local + s + h)
                self._write(self._tail * self._fade_out + mine * self._fade_in)
            else:  # the previous chunk's end was forced but this one's start is not: no fade
                self._write(_take(samples, local + s - h, local + s + h))
            self._tail = None
            body_start = s + h
        else:
            body_start = s
        body_end = e - h if forced_end else e
        self._write(_take(samples, local + body_start, local + max(body_start, body_end)))
        if forced_end:
            self._tail = _take(samples, local + e - h, local + e + h)

    def _write(self, block: np.ndarray) -> None:
        if block.size and self._file is not None:
            self.written += block.shape[0]
            if self.limiter is None:
                self._file.write(block)
                return
            for part in self.limiter.push(block):
                self._file.write(part)

    def finish(self) -> int:
        """Flush a pending fade tail (a forced last cut) and the limiter; return the frames written."""
        if self._tail is not None:
            self._write(self._tail[: self.half])
            self._tail = None
        if self.limiter is not None and self._file is not None:
            for part in self.limiter.flush():
                self._file.write(part)
        return self.written
