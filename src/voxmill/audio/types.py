"""The audio value types every audio module shares."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["MAX_RATE", "MIN_RATE", "Audio", "Block", "SourceInfo", "rate_problem"]

# The sample rates voxmill reads and writes. Below 4 kHz nothing is left of speech and the BS.1770
# meter's filters have no meaning (libebur128 returns inf, or fails to allocate at a few Hz); above
# 768 kHz no converter or codec in use goes, and a corrupt header's 2^31 Hz would make every
# rate-derived buffer (VAD resampling, loudness state) absurd.
MIN_RATE = 4_000
MAX_RATE = 768_000


def rate_problem(rate: int) -> str | None:
    """Why voxmill cannot work at ``rate`` Hz, or None when it can."""
    if MIN_RATE <= rate <= MAX_RATE:
        return None
    return f"sample rate {rate} Hz is outside what voxmill handles ({MIN_RATE}-{MAX_RATE} Hz)"


@dataclass(frozen=True)
class SourceInfo:
    """What the file says about itself, before any conversion."""

    path: str
    format: str
    codec: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


@dataclass
class Audio:
    """float32 samples, shape ``(frames,)`` when mono or ``(frames, channels)``, plus their rate."""

    samples: np.ndarray
    sample_rate: int
    source: SourceInfo | None = field(default=None, compare=False)

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else int(self.samples.shape[1])

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    def to_mono(self) -> Audio:
        if self.samples.ndim == 1:
            return self
        mono = self.samples.mean(axis=1, dtype=np.float32)
        return Audio(np.ascontiguousarray(mono), self.sample_rate, self.source)


@dataclass(frozen=True)
class Block:
    """One block of a long file: ``start`` is its first frame in the file (at the output rate)."""

    index: int
    start: int
    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate
