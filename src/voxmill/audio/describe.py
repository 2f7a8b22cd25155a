"""One file's summary for ``voxmill info``: container facts plus level, loudness and speech measures.

The file is read in blocks and every measure is a running one (peak, clipped samples, BS.1770 state,
one quiet flag per 20-ms frame, one speech flag per 32-ms VAD window), so a two-hour recording is
measured in the memory of one block.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxmill.audio.analysis import CLIP_LEVEL, FRAME_SECONDS, SILENCE_DB, frame_rms_db
from voxmill.audio.io import blocks, probe
from voxmill.audio.loudness import MIN_SECONDS, LoudnessMeter
from voxmill.audio.vad import SpeechDetector, SpeechTracker

__all__ = ["FileReport", "describe"]

BLOCK_SECONDS = 30.0


@dataclass(frozen=True)
class FileReport:
    """What ``voxmill info`` shows for one file. Percentages are 0-100; levels in dBFS/LUFS.

    ``peak_dbfs`` and ``clipping_pct`` are over every channel's samples. ``speech_pct`` is the time
    inside Silero VAD speech segments (None without VAD); ``silence_pct`` is the time in 20-ms frames
    below -50 dBFS *outside* speech (every such frame without VAD), so the pauses between words count
    as speech and the two never add up to more than 100.
    """

    path: str
    format: str
    codec: str
    sample_rate: int
    channels: int
    duration: float
    peak_dbfs: float
    lufs: float
    clipping_pct: float
    silence_pct: float
    speech_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        # JSON has no -inf: digital silence has no level, written as null.
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


class _QuietFrames:
    """One flag per whole 20-ms frame of a mono stream: below the silence level or not."""

    def __init__(self, sr: int) -> None:
        self.sr = sr
        self.size = max(1, int(sr * FRAME_SECONDS))
        self._carry = np.zeros(0, dtype=np.float32)
        self._flags: list[np.ndarray] = []

    def add(self, mono: np.ndarray) -> None:
        data = np.concatenate((self._carry, mono)) if self._carry.size else mono
        whole = data.shape[0] // self.size * self.size
        self._flags.append(frame_rms_db(data[:whole], self.sr, self.size / self.sr) < SILENCE_DB)
        self._carry = data[whole:].copy()

    def flags(self) -> np.ndarray:
        return np.concatenate(self._flags) if self._flags else np.zeros(0, dtype=bool)


def _silence_pct(quiet: np.ndarray, size: int, speech: list[tuple[int, int]] | None) -> float:
    if quiet.size == 0:
        return 0.0
    if speech:
        quiet = quiet.copy()
        for start, end in speech:  # a frame that touches speech is speech
            quiet[start // size : -(-end // size)] = False
    return 100 * float(np.count_nonzero(quiet)) / quiet.size


def describe(path: str | Path, vad: bool = True, detector: SpeechDetector | None = None) -> FileReport:
    """Read ``path`` in blocks and measure it; raises AudioDecodeError for a damaged file."""
    info = probe(path)
    sr = info.sample_rate
    meter = LoudnessMeter(sr, info.channels)
    quiet = _QuietFrames(sr)
    tracker = SpeechTracker(sr, detector=detector) if vad else None
    frames = clipped = 0
    for block in blocks(path, seconds=BLOCK_SECONDS, mono=False):
        data = block.samples.reshape(block.samples.shape[0], -1)
        meter.add(data)
        if meter.peak >= CLIP_LEVEL:  # counting needs a pass; most files never come near
            clipped += int(np.count_nonzero(data >= CLIP_LEVEL) + np.count_nonzero(data <= -CLIP_LEVEL))
        mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=np.float32)
        quiet.add(mono)
        if tracker is not None:
            tracker.add(mono)
        frames += data.shape[0]
    segments = [(s.start, s.end) for s in tracker.segments()] if tracker is not None else None
    speech_pct = None
    if segments is not None:
        speech_pct = 100 * sum(end - start for start, end in segments) / max(1, frames)
    return FileReport(
        path=str(path),
        format=info.format,
        codec=info.codec,
        sample_rate=sr,
        channels=info.channels,
        duration=frames / sr,
        peak_dbfs=20 * math.log10(meter.peak) if meter.peak > 0 else -math.inf,
        lufs=meter.lufs if frames >= MIN_SECONDS * sr else -math.inf,
        clipping_pct=100 * clipped / max(1, frames * info.channels),
        silence_pct=_silence_pct(quiet.flags(), quiet.size, segments),
        speech_pct=speech_pct,
    )
