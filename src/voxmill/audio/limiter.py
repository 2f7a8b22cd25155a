"""A streaming look-ahead peak limiter: no sample past the ceiling, loudness left alone.

A processor may overshoot (a WORLD pitch shift of speech that peaks at -0.3 dBFS goes past full scale)
and a file writer then clips. Here the gain each sample needs (``ceiling / |x|``, 1 where it is
below) is spread out: a running minimum over ``hold`` before and ``lookahead`` after each sample,
then two moving averages that make the gain ramp down before a peak and back up after it as an
S-curve. Each average only lowers the gain over samples whose window covered the peak, so the gain
at every sample is at most what that sample needs: the ceiling holds exactly, with no clipping
anywhere and no effect where the audio stays below it. The gain is one for all channels (the stereo
image is kept).

Streaming: output lags input by ``lookahead`` samples; memory is that lag plus the hold. Blocks with
no sample above the ceiling near them pass through untouched after one max/min pass.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["PeakLimiter"]


def _sliding_min(values: np.ndarray, width: int) -> np.ndarray:
    """``out[i] = values[i : i + width].min()`` in O(n) (van Herk / Gil-Werman)."""
    n = values.shape[0]
    count = -(-n // width)
    padded = np.full(count * width, np.inf)
    padded[:n] = values
    rows = padded.reshape(count, width)
    prefix = np.minimum.accumulate(rows, axis=1).reshape(-1)
    suffix = np.minimum.accumulate(rows[:, ::-1], axis=1)[:, ::-1].reshape(-1)
    return np.minimum(suffix[: n - width + 1], prefix[width - 1 : n])


def _moving_mean(values: np.ndarray, width: int) -> np.ndarray:
    """``out[i] = values[i : i + width].mean()``."""
    sums = np.concatenate(([0.0], np.cumsum(values)))
    return (sums[width:] - sums[:-width]) / width


class PeakLimiter:
    """``push(block)`` returns the blocks ready to write (``lookahead`` samples later); ``flush()`` the rest.

    ``max_reduction_db`` and ``limited_frames`` say what it did (0 and 0: the audio never came near).
    """

    def __init__(
        self, sample_rate: int, ceiling_db: float = -1.0, lookahead_ms: float = 6.0, hold_ms: float = 25.0
    ) -> None:
        self.ceiling = 10 ** (ceiling_db / 20)
        self.ahead = max(2, round(sample_rate * lookahead_ms / 1000))
        self.hold = max(0, round(sample_rate * hold_ms / 1000))
        self.widths = (self.ahead // 2 + 1, self.ahead // 2 + 1)  # their sum - 2 <= ahead: the bound holds
        self.history = self.hold + sum(self.widths) - 2  # gains needed before the pending samples
        self.limited_frames = 0
        self.max_reduction_db = 0.0
        self._pending: np.ndarray | None = None  # the last ``ahead`` input samples, not yet out
        self._pending_hot = False  # some pending sample is above the ceiling
        self._needed = np.ones(self.history)  # per-sample gains needed just before ``_pending``
        self._needed_clear = True  # all of ``_needed`` is 1

    def _required(self, block: np.ndarray) -> np.ndarray:
        peak = np.abs(block) if block.ndim == 1 else np.abs(block).max(axis=1)
        with np.errstate(divide="ignore"):
            return np.where(peak > self.ceiling, self.ceiling / np.maximum(peak, 1e-30), 1.0)

    def _peak(self, block: np.ndarray) -> float:
        return max(float(block.max()), -float(block.min())) if block.size else 0.0

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        if block.shape[0] == 0:
            return []
        if self._pending is None:
            self._pending = block[:0]
        hot = self._peak(block) > self.ceiling
        if not hot and not self._pending_hot and self._needed_clear:
            return self._pass(block)
        return self._limit(block)

    def _pass(self, block: np.ndarray) -> list[np.ndarray]:
        """Nothing above the ceiling within reach: the samples go out as they came, ``ahead`` later."""
        pending = self._pending if self._pending is not None else block[:0]
        if block.shape[0] >= self.ahead:
            out = [pending, block[: block.shape[0] - self.ahead]]
            self._pending = block[block.shape[0] - self.ahead :].copy()
        else:
            joined = np.concatenate((pending, block))
            cut = max(0, joined.shape[0] - self.ahead)
            out = [joined[:cut]]
            self._pending = joined[cut:].copy()
        self._pending_hot = False
        return [part for part in out if part.shape[0]]

    def _limit(self, block: np.ndarray) -> list[np.ndarray]:
        pending = self._pending if self._pending is not None else block[:0]
        x = np.concatenate((pending, block))
        needed = np.concatenate((self._needed, self._required(x)))
        ready = x.shape[0] - self.ahead
        if ready <= 0:
            self._pending, self._pending_hot = x, self._peak(x) > self.ceiling
            return []
        gain = _sliding_min(needed, self.hold + self.ahead + 1)
        for width in self.widths:
            gain = _moving_mean(gain, width)
        # The averages keep the gain under what each sample needs; the minimum only absorbs rounding.
        gain = np.minimum(gain[:ready], needed[self.history : self.history + ready])
        lowered = gain < 1.0
        if lowered.any():
            self.limited_frames += int(np.count_nonzero(lowered))
            # A plug-in's absurd samples (1e30) need a gain that underflows to 0: report the floor of
            # float32 rather than fail on log10(0).
            floor = max(float(gain.min()), float(np.finfo(np.float32).tiny))
            self.max_reduction_db = max(self.max_reduction_db, -20 * math.log10(floor))
        shaped = gain.astype(np.float32)
        out = x[:ready] * (shaped if x.ndim == 1 else shaped[:, None])
        self._needed = needed[ready : ready + self.history].copy()
        self._needed_clear = bool((self._needed >= 1.0).all())
        self._pending = x[ready:].copy()
        self._pending_hot = self._peak(self._pending) > self.ceiling
        return [out]

    def flush(self) -> list[np.ndarray]:
        """The last ``ahead`` samples (limited against silence after them)."""
        if self._pending is None or self._pending.shape[0] == 0:
            return []
        count = self._pending.shape[0]
        silence = np.zeros((self.ahead, *self._pending.shape[1:]), dtype=self._pending.dtype)
        parts = self.push(silence)
        self._pending = None
        joined = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else silence[:0])
        return [joined[:count]]
