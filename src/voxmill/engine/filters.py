"""Clip filters shared by the dataset applications (``prepare``, ``segment``): level, Piper's floor,
duration, SNR and speaking rate. Each check raises :class:`~voxmill.engine.Drop` with a
:class:`DropCode` and the numbers in its message; a filter set to None is off."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

from voxmill import errors
from voxmill.audio.analysis import CLIP_LEVEL, analyze
from voxmill.corpus.piper import PIPER_SEGMENT_SAMPLES, piper_min_seconds
from voxmill.engine.options import check_number
from voxmill.engine.outcome import Drop

__all__ = ["SILENT_PEAK", "ClipFilters", "DropCode"]

SILENT_PEAK = 10 ** (-60 / 20)  # a clip whose loudest sample is below -60 dBFS holds no usable speech
MAX_RATE = 1000.0  # characters per second: far above any speech, so only a typo is refused


class DropCode(str, Enum):  # enum.StrEnum is 3.11+; voxmill supports 3.10
    """Why a clip was dropped, as reports group it (the reason text adds the numbers)."""

    def __str__(self) -> str:
        return str(self.value)

    EMPTY_TEXT = "empty text"
    CLIPPING = "clipping"
    SILENT = "silent"
    NO_SPEECH = "no speech found"
    TOO_SHORT_FOR_PIPER = "too short for Piper training"
    TOO_SHORT = "too short"
    TOO_LONG = "too long"
    SPEAKER_CAP = "speaker cap"
    LOW_SNR = "low SNR"
    TOO_FAST = "speaking too fast"
    TOO_SLOW = "speaking too slow"
    HIGH_CER = "high CER"
    NOT_IN_TEXT = "not in text"
    NO_WORDS = "no words recognized"


@dataclass(frozen=True)
class ClipFilters:
    """Which clips a dataset keeps. Dropped: more than ``max_clipping`` of the samples at full scale, or
    a peak below -60 dBFS (:meth:`check_level`, on the decoded audio); shorter than Piper's training
    window (``for_piper``), than ``min_duration`` or longer than ``max_duration`` seconds, an SNR
    estimate below ``min_snr_db``, or a speaking rate (characters of the cleaned text per second)
    outside ``min_chars_per_second`` .. ``max_chars_per_second`` (:meth:`check_clip`, on the final clip).
    """

    min_duration: float = 0.0
    max_duration: float = 30.0
    max_clipping: float = 0.001
    for_piper: bool = True
    min_snr_db: float | None = None
    min_chars_per_second: float | None = None
    max_chars_per_second: float | None = None

    def validate(self, min_flag: str = "--min-duration", max_flag: str = "--max-duration") -> None:
        """Raise ConfigError naming the CLI flag (``min_flag``/``max_flag`` for the durations) and its range."""
        check_number(min_flag, self.min_duration, 0, 3600)
        check_number(max_flag, self.max_duration, 0, math.inf)
        if self.max_duration <= 0 or self.max_duration < self.min_duration:
            raise errors.ConfigError(
                f"{max_flag} {self.max_duration:g}: must be above 0 and at least {min_flag} ({self.min_duration:g})"
            )
        check_number("--max-clipping", self.max_clipping, 0, 1)
        if self.min_snr_db is not None:
            check_number("--min-snr", self.min_snr_db, -100, 100)
        if self.min_chars_per_second is not None:
            check_number("--min-speaking-rate", self.min_chars_per_second, 0, MAX_RATE)
        if self.max_chars_per_second is not None:
            check_number("--max-speaking-rate", self.max_chars_per_second, 0, MAX_RATE, low_open=True)
            low = self.min_chars_per_second
            if low is not None and self.max_chars_per_second < low:
                raise errors.ConfigError(
                    f"--max-speaking-rate {self.max_chars_per_second:g}: must be at least --min-speaking-rate ({low:g})"
                )

    def check_level(self, samples: np.ndarray) -> None:
        """Drop a clip with too many clipped samples, or a silent one (decoded audio, any rate)."""
        # Only peak and clipping matter here; the full analyze() (percentiles, frames) is 10x the cost.
        # max/min need no temporary |x| array, and clipped samples are only counted when the peak is there.
        peak = max(float(samples.max()), -float(samples.min()))
        if peak >= CLIP_LEVEL:
            clipping = float(np.count_nonzero(np.abs(samples) >= CLIP_LEVEL)) / samples.shape[0]
            if clipping > self.max_clipping:
                raise Drop(f"clipping: {clipping:.2%} of samples at full scale", DropCode.CLIPPING)
        if peak < SILENT_PEAK:
            raise Drop("silent: peak below -60 dBFS", DropCode.SILENT)

    def check_clip(self, samples: np.ndarray, sr: int, text: str) -> None:
        """Drop the final clip (mono ``samples`` at ``sr``, trimmed; ``text`` cleaned) outside the bounds."""
        seconds = samples.shape[0] / sr
        if self.for_piper and samples.shape[0] < PIPER_SEGMENT_SAMPLES:
            minimum = piper_min_seconds(sr)
            raise Drop(f"too short for Piper training: {seconds:.2f}s < {minimum:.2f}s", DropCode.TOO_SHORT_FOR_PIPER)
        if seconds < self.min_duration:
            raise Drop(f"too short: {seconds:.2f}s < {self.min_duration:g}s", DropCode.TOO_SHORT)
        if seconds > self.max_duration:
            raise Drop(f"too long: {seconds:.2f}s > {self.max_duration:g}s", DropCode.TOO_LONG)
        if self.min_snr_db is not None:
            # analyze()'s estimate, so check reports the same number; measured ~1.4x the bare frame
            # levels it needs (0.17 vs 0.12 ms per 10 s clip), nothing beside decoding and VAD.
            snr = analyze(samples, sr).snr_db
            if not snr >= self.min_snr_db:  # -inf (nothing but digital silence) is low too
                raise Drop(f"low SNR: {snr:.1f} dB < {self.min_snr_db:g} dB", DropCode.LOW_SNR)
        if self.min_chars_per_second is None and self.max_chars_per_second is None:
            return
        rate = len(text) / seconds if seconds > 0 else (math.inf if text else 0.0)
        if self.max_chars_per_second is not None and rate > self.max_chars_per_second:
            raise Drop(f"speaking too fast: {rate:.1f} characters/s > {self.max_chars_per_second:g}", DropCode.TOO_FAST)
        if self.min_chars_per_second is not None and rate < self.min_chars_per_second:
            raise Drop(f"speaking too slow: {rate:.1f} characters/s < {self.min_chars_per_second:g}", DropCode.TOO_SLOW)
