"""Per-clip measurements used by ``info``, dataset filters and ``check``: all vectorised numpy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["AudioStats", "analyze", "frame_rms_db"]

FRAME_SECONDS = 0.02
# Frames this far below full scale count as silence; -50 dBFS is below room tone of usable speech.
SILENCE_DB = -50.0
# A sample this close to full scale is counted as clipped (int16 full scale is 32767/32768).
CLIP_LEVEL = 0.999


def _db(value: float) -> float:
    return 20 * math.log10(value) if value > 0 else -math.inf


def frame_rms_db(samples: np.ndarray, sr: int, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames (the tail frame is dropped)."""
    size = max(1, int(sr * frame_seconds))
    count = samples.shape[0] // size
    if count == 0:
        return np.zeros(0, dtype=np.float64)
    frames = samples[: count * size].astype(np.float64).reshape(count, size)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    with np.errstate(divide="ignore"):
        return np.asarray(20 * np.log10(rms), dtype=np.float64)


@dataclass(frozen=True)
class AudioStats:
    """Measurements of one mono clip. Levels in dBFS, times in seconds, ratios in [0, 1]."""

    duration: float
    peak_dbfs: float
    rms_dbfs: float
    clipping_ratio: float
    silence_ratio: float
    leading_silence: float
    trailing_silence: float
    non_finite: int
    snr_db: float

    def to_dict(self) -> dict[str, Any]:
        # JSON has no infinities: -inf levels (digital silence) become None.
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def analyze(samples: np.ndarray, sr: int, silence_db: float = SILENCE_DB) -> AudioStats:
    """Measure a mono clip (multi-channel input is averaged first)."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim > 1:
        data = data.mean(axis=1)
    finite = np.isfinite(data)
    non_finite = int(data.shape[0] - np.count_nonzero(finite))
    if non_finite:
        data = np.where(finite, data, 0.0).astype(np.float32)
    n = data.shape[0]
    if n == 0:
        return AudioStats(0.0, -math.inf, -math.inf, 0.0, 1.0, 0.0, 0.0, 0, -math.inf)
    magnitude = np.abs(data)
    peak = float(magnitude.max())
    rms = float(np.sqrt(np.mean(data.astype(np.float64) ** 2)))
    clipping = float(np.count_nonzero(magnitude >= CLIP_LEVEL)) / n

    levels = frame_rms_db(data, sr)
    if levels.size == 0:
        silent = rms == 0 or _db(rms) < silence_db
        return AudioStats(n / sr, _db(peak), _db(rms), clipping, float(silent), 0.0, 0.0, non_finite, -math.inf)
    quiet = levels < silence_db
    frame = FRAME_SECONDS
    loud_idx = np.flatnonzero(~quiet)
    if loud_idx.size == 0:
        leading = trailing = n / sr
    else:
        leading = float(loud_idx[0]) * frame
        trailing = float(levels.size - 1 - loud_idx[-1]) * frame + (n / sr - levels.size * frame)
    return AudioStats(
        duration=n / sr,
        peak_dbfs=_db(peak),
        rms_dbfs=_db(rms),
        clipping_ratio=clipping,
        silence_ratio=float(np.count_nonzero(quiet)) / levels.size,
        leading_silence=leading,
        trailing_silence=trailing,
        non_finite=non_finite,
        snr_db=_snr_estimate(levels),
    )


def _snr_estimate(levels: np.ndarray) -> float:
    """Speech-to-noise estimate: loud frames (95th percentile) over the noise floor (10th).

    A blind estimate in the spirit of energy-percentile methods; good for ranking clips, not a lab
    measurement. Digital silence is floored at -120 dBFS and the result capped at 100 dB.
    """
    if not np.isfinite(levels).any():
        return -math.inf
    floored = np.maximum(levels, -120.0)
    signal, floor = np.percentile(floored, [95, 10])
    return min(100.0, float(signal - floor))
