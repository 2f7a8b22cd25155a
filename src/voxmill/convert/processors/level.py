"""``loudness``: bring each chunk to a loudness target (BS.1770), peak-limited by gain only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from voxmill.audio import normalize
from voxmill.convert.processors.base import ChunkAudio, Processor, check_range

__all__ = ["Loudness"]


@dataclass
class Loudness(Processor):
    """Each chunk (cut in pauses, so level steps fall in silence) to ``target_lufs``, peak under ``peak_db``.

    Multi-channel chunks are measured as BS.1770 weighs channels and get one gain.
    """

    target_lufs: float = -23.0
    peak_db: float = -1.0

    name: ClassVar[str] = "loudness"
    releases_gil: ClassVar[bool] = False
    channels: ClassVar[str] = "all"  # one gain for every channel: the balance between them stays

    def __post_init__(self) -> None:
        check_range("target_lufs", self.target_lufs, -70, 0)
        check_range("peak_db", self.peak_db, -40, 0)

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        # Measured on the chunk's own audio: the context belongs to the neighbours' level.
        core = normalize(chunk.core, chunk.sample_rate, self.target_lufs, self.peak_db)
        gain = np.float32(10 ** (core.gain_db / 20))
        return chunk.samples * gain, chunk.sample_rate
