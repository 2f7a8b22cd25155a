"""``gender``: Praat's "Change gender" (PSOLA) through parselmouth: fast, no vocoder.

Not bit-for-bit repeatable: Praat's output differs slightly from run to run on the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from voxmill.convert.processors.base import ChunkAudio, Processor, check_range

__all__ = ["ChangeGender"]


@dataclass
class ChangeGender(Processor):
    """Formants by ``formant`` (ratio), pitch median to ``pitch_median`` Hz (0 keeps it), range by ``pitch_range``."""

    formant: float = 1.1
    pitch_median: float = 0.0
    pitch_range: float = 1.0
    pitch_floor: float = 75.0
    pitch_ceiling: float = 600.0

    name: ClassVar[str] = "gender"
    releases_gil: ClassVar[bool] = False
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("parselmouth", "voice"),)

    def __post_init__(self) -> None:
        check_range("formant ratio", self.formant, 0.5, 2.0)
        check_range("pitch median (Hz, 0 keeps it)", self.pitch_median, 0, 1000)
        check_range("pitch range", self.pitch_range, 0, 10)
        check_range("pitch floor (Hz)", self.pitch_floor, 20, 500)
        check_range("pitch ceiling (Hz)", self.pitch_ceiling, self.pitch_floor + 1, 2000)

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        import parselmouth

        sound = parselmouth.Sound(chunk.samples.astype(np.float64), chunk.sample_rate)
        changed = parselmouth.praat.call(
            sound, "Change gender", self.pitch_floor, self.pitch_ceiling, self.formant,
            self.pitch_median, self.pitch_range, 1.0,
        )  # fmt: skip
        return np.asarray(changed.values[0], dtype=np.float32), int(changed.sampling_frequency)
