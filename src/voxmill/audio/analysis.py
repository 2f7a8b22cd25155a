"""Per-clip measurements used by ``info``, dataset filters and ``check``: all vectorised numpy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["AudioStats", "analyze", "frame_rms_db", "sound_bounds"]

FRAME_SECONDS = 0.02
# Frames this far below full scale count as silence; -50 dBFS is below room tone of usable speech.
SILENCE_DB = -50.0
# A sample this close to full scale is counted as clipped (int16 full scale is 32767/32768).
CLIP_LEVEL = 0.999


def _db(value: float) -> float:
    return 20 * math.log10(value) if value > 0 else -math.inf


def _frame_power(samples: np.ndarray, size: int) -> np.ndarray:
    """Mean square of consecutive ``size``-sample frames (the tail frame is dropped), float64.

    One float32 pass (einsum sums the squares without a squared temporary); float32 sums of a few
    hundred squares are exact to ~1e-5, far below what a level in dB can show.
    """
    count = samples.shape[0] // size
    frames = samples[: count * size].reshape(count, size)
    return np.einsum("ij,ij->i", frames, frames).astype(np.float64) / size


def frame_rms_db(samples: np.ndarray, sr: int, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames (the tail frame is dropped)."""
    data = np.asarray(samples, dtype=np.float32)
    power = _frame_power(data, max(1, int(sr * frame_seconds)))
    with np.errstate(divide="ignore"):
        return np.asarray(10 * np.log10(power), dtype=np.float64)


def sound_bounds(samples: np.ndarray, sr: int, threshold_db: float = -60.0, hop_ms: float = 5.0) -> tuple[int, int]:
    """(start, end) sample positions of the first and last ``hop_ms`` frame above ``threshold_db``.

    (0, 0) for a clip with nothing above it. -60 dBFS is far below any consonant, so only the digital
    near-silence a TTS model puts around an utterance is outside the bounds.
    """
    hop = max(1, round(sr * hop_ms / 1000))
    levels = frame_rms_db(samples, sr, hop / sr)
    loud = np.flatnonzero(levels > threshold_db)
    if loud.size == 0:
        return 0, 0
    return int(loud[0]) * hop, min(samples.shape[0], (int(loud[-1]) + 1) * hop)


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
    """Measure a mono clip (multi-channel input is averaged first).

    Three passes over the samples (frame energies, max, min) and no clip-sized temporaries: this
    runs on every clip of a dataset check, where it would otherwise cost as much as decoding.
    """
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim > 1:
        data = data.mean(axis=1, dtype=np.float32)
    n = data.shape[0]
    if n == 0:
        return AudioStats(0.0, -math.inf, -math.inf, 0.0, 1.0, 0.0, 0.0, 0, -math.inf)
    size = max(1, int(sr * FRAME_SECONDS))
    power = _frame_power(data, size)
    tail = data[power.size * size :]
    total = float(power.sum()) * size + float(np.dot(tail, tail))
    non_finite = 0
    if not math.isfinite(total):  # a NaN or inf sample poisons the sum: count them, measure the rest
        finite = np.isfinite(data)
        non_finite = int(n - np.count_nonzero(finite))
        data = np.where(finite, data, np.float32(0.0))
        power = _frame_power(data, size)
        tail = data[power.size * size :]
        total = float(power.sum()) * size + float(np.dot(tail, tail))
    peak = max(float(data.max()), -float(data.min()))
    rms = math.sqrt(total / n)
    clipping = 0.0
    if peak >= CLIP_LEVEL:  # counting needs a pass and a temporary; most clips cannot have any
        clipping = float(np.count_nonzero(data >= CLIP_LEVEL) + np.count_nonzero(data <= -CLIP_LEVEL)) / n

    if power.size == 0:
        silent = rms == 0 or _db(rms) < silence_db
        return AudioStats(n / sr, _db(peak), _db(rms), clipping, float(silent), 0.0, 0.0, non_finite, -math.inf)
    with np.errstate(divide="ignore"):
        levels = 10 * np.log10(power)
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
