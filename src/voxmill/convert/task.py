"""The per-chunk work of ``convert``, run in engine workers: shared samples in, shared samples out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxmill.audio import resample
from voxmill.audio.stitch import to_rate
from voxmill.convert.processors.base import ChunkAudio, Processor
from voxmill.engine import SharedArray, Task, WorkerContext, share

__all__ = ["ChunkItem", "ChunkResult", "ChunkTask"]


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
    """Processed audio at the output rate (context included, ``pad_left`` samples before the chunk)."""

    audio: SharedArray
    pad_left: int
    attempts: int


def fit(samples: np.ndarray, rate: int, item: ChunkItem, out_rate: int) -> tuple[np.ndarray, int]:
    """Audio covering the padded chunk, at ``out_rate``, exactly as long as the padded span: (samples, pad_left)."""
    if rate != out_rate:
        samples = resample(samples, rate, out_rate)
    padded = item.pad_left + (item.end - item.start) + item.pad_right
    length = to_rate(padded, item.sample_rate, out_rate)
    out = np.zeros(length, dtype=np.float32)
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

    def __call__(self, item: ChunkItem) -> ChunkResult:
        samples = item.audio.get()
        attempts = 0
        if item.silent:  # nothing to change in a pause: the processor is skipped
            out, rate = np.asarray(samples, dtype=np.float32), item.sample_rate
        else:
            chunk = ChunkAudio(samples, item.sample_rate, item.pad_left, item.pad_right, item.index)
            try:
                attempts = 1
                out, rate = self.processor.process(chunk)
            except Exception:
                attempts = 2
                out, rate = self.processor.process(chunk)
        fitted, pad_left = fit(np.asarray(out, dtype=np.float32).reshape(-1), rate, item, self.out_rate)
        return ChunkResult(share(fitted), pad_left, attempts)
