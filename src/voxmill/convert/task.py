"""The per-chunk work of ``convert``, run in engine workers: shared samples in, shared samples out.

A chunk is ``(frames,)`` for a mono output or ``(frames, channels)``; a processor that works on one
channel (``channels = "each"``) runs on each, and channels that are the same (dual mono) run once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from voxmill.audio import resample
from voxmill.audio.stitch import to_rate
from voxmill.convert.processors.base import ChunkAudio, Processor
from voxmill.engine import SharedArray, Task, WorkerContext, share

__all__ = ["ChunkItem", "ChunkResult", "ChunkSamples", "ChunkTask"]


class ChunkSamples(Protocol):
    """Where a processed chunk's samples wait for the stitcher: shared memory (a chunk just done) or
    a part file of a run being resumed (:mod:`voxmill.convert.resume`)."""

    def take(self) -> np.ndarray:
        """The samples, a private copy; shared memory is freed (a part file stays for a later resume)."""
        ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class ChunkItem:
    """A chunk on its way to a worker: positions in input samples, the audio in shared memory."""

    index: int
    start: int
    end: int
    pad_left: int
    pad_right: int
    audio: SharedArray
    sample_rate: int
    silent: bool
    forced_start: bool
    forced_end: bool

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / self.sample_rate


@dataclass(frozen=True)
class ChunkResult:
    """Chunk ``index`` processed: audio at the output rate (context included, ``pad_left`` samples
    before the chunk)."""

    index: int
    audio: ChunkSamples
    pad_left: int
    attempts: int


def fit(samples: np.ndarray, rate: int, item: ChunkItem, out_rate: int) -> tuple[np.ndarray, int]:
    """Audio covering the padded chunk, at ``out_rate``, exactly as long as the padded span: (samples, pad_left)."""
    if rate != out_rate:
        samples = resample(samples, rate, out_rate)
    padded = item.pad_left + (item.end - item.start) + item.pad_right
    length = to_rate(padded, item.sample_rate, out_rate)
    out = np.zeros((length, *samples.shape[1:]), dtype=np.float32)
    n = min(length, samples.shape[0])
    out[:n] = np.nan_to_num(samples[:n], nan=0.0, posinf=0.0, neginf=0.0)
    return out, to_rate(item.pad_left, item.sample_rate, out_rate)


@dataclass
class ChunkTask(Task):
    """Runs the processor on one chunk; a failure is retried once, then the chunk fails (the run goes on)."""

    processor: Processor
    out_rate: int

    def setup(self, ctx: WorkerContext) -> None:
        self.processor.setup(ctx)

    def audio_seconds(self, item: ChunkItem, value: ChunkResult) -> float:
        return item.seconds

    def _run(self, item: ChunkItem, samples: np.ndarray) -> tuple[np.ndarray, int, int]:
        """The processor on one chunk, retried once: (audio fitted to the padded span at ``out_rate``,
        pad_left, attempts)."""
        chunk = ChunkAudio(samples, item.sample_rate, item.pad_left, item.pad_right, item.index)
        attempts = 1
        try:
            out, rate = self.processor.process(chunk)
        except Exception:
            attempts = 2
            out, rate = self.processor.process(chunk)
        data = np.asarray(out, dtype=np.float32)
        if samples.ndim == 1:
            data = data.reshape(-1)
        elif data.ndim != 2 or data.shape[1] != samples.shape[1]:
            shape = f"{data.shape} for a {samples.shape[1]}-channel chunk"
            raise ValueError(f"{self.processor.name} returned samples of shape {shape}")
        fitted, pad_left = fit(data, rate, item, self.out_rate)
        return fitted, pad_left, attempts

    def _each_channel(self, item: ChunkItem, samples: np.ndarray) -> tuple[np.ndarray, int, int]:
        done: list[tuple[np.ndarray, np.ndarray]] = []  # (input channel, its fitted output)
        columns = []
        attempts = pad_left = 0
        for channel in range(samples.shape[1]):
            column = np.ascontiguousarray(samples[:, channel])
            same = next((out for seen, out in done if np.array_equal(seen, column)), None)
            if same is None:
                same, pad_left, tries = self._run(item, column)
                attempts = max(attempts, tries)
                done.append((column, same))
            columns.append(same)
        return np.stack(columns, axis=1), pad_left, attempts

    def __call__(self, item: ChunkItem) -> ChunkResult:
        samples = item.audio.get()
        if item.silent:  # nothing to change in a pause: the processor is skipped
            fitted, pad_left = fit(np.asarray(samples, dtype=np.float32), item.sample_rate, item, self.out_rate)
            attempts = 0
        elif samples.ndim == 2 and self.processor.channels == "each":
            fitted, pad_left, attempts = self._each_channel(item, samples)
        else:
            fitted, pad_left, attempts = self._run(item, samples)
        return ChunkResult(item.index, share(fitted), pad_left, attempts)
