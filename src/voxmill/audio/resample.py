"""Sample-rate conversion with soxr (band-limited, fast, the library sox itself uses)."""

from __future__ import annotations

import numpy as np
import soxr

__all__ = ["resample"]


def resample(samples: np.ndarray, sr_in: int, sr_out: int, quality: str = "HQ") -> np.ndarray:
    """Resample ``(frames,)`` or ``(frames, channels)`` float audio from ``sr_in`` to ``sr_out``.

    ``quality`` is a soxr quality: ``QQ``, ``LQ``, ``MQ``, ``HQ`` (default) or ``VHQ``.
    """
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    data = np.asarray(samples, dtype=np.float32)
    if sr_in == sr_out or data.shape[0] == 0:
        return data
    out = soxr.resample(data, sr_in, sr_out, quality=quality)
    return np.asarray(out, dtype=np.float32)
