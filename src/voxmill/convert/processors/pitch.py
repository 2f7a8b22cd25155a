"""``pitch``: WORLD vocoder (pyworld) pitch shift, formant shift and f0 flattening."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from voxmill.convert.processors.base import ChunkAudio, Processor, check_range

__all__ = ["PitchShift"]

FRAME_MS = 5.0


def _warp_envelope(sp: np.ndarray, ratio: float) -> np.ndarray:
    """Move the spectral envelope (formants) up by ``ratio`` along frequency; the top bins repeat."""
    bins = sp.shape[1]
    source = np.clip(np.arange(bins) / ratio, 0, bins - 1)
    lo = np.floor(source).astype(np.int64)
    hi = np.minimum(lo + 1, bins - 1)
    frac = source - lo
    return np.ascontiguousarray(sp[:, lo] * (1 - frac) + sp[:, hi] * frac)


@dataclass
class PitchShift(Processor):
    """Shift pitch by ``semitones`` and formants by ``formant`` (ratio, 1 = unchanged); ``flatten`` = monotone.

    pyworld's C++ releases the GIL: threads scale on it (measured in benchmarks/convert_vs_peers.py).
    """

    semitones: float = 0.0
    formant: float = 1.0
    flatten: bool = False

    name: ClassVar[str] = "pitch"
    releases_gil: ClassVar[bool] = True
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("pyworld", "voice"),)

    def __post_init__(self) -> None:
        check_range("semitones", self.semitones, -24, 24)
        check_range("formant ratio", self.formant, 0.5, 2.0)

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        import pyworld

        sr = chunk.sample_rate
        x = chunk.samples.astype(np.float64)
        f0, times = pyworld.harvest(x, sr, frame_period=FRAME_MS)
        sp = pyworld.cheaptrick(x, f0, times, sr)
        ap = pyworld.d4c(x, f0, times, sr)
        voiced = f0 > 0
        if self.flatten and voiced.any():
            f0 = np.where(voiced, np.median(f0[voiced]), 0.0)
        f0 = f0 * 2 ** (self.semitones / 12)
        if self.formant != 1.0:
            sp = _warp_envelope(sp, self.formant)
        y = pyworld.synthesize(f0, sp, ap, sr, frame_period=FRAME_MS)
        return np.nan_to_num(y[: x.shape[0]]).astype(np.float32), sr
