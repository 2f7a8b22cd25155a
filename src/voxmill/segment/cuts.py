"""Where a long recording is cut into clips, from its speech runs (Silero VAD), and how clips are grouped
into windows for the recognizer.

Cuts go only in pauses, never inside speech (so never inside a word). A stretch of speech longer than
the longest clip is split at its longest pause, recursively, preferring pauses that leave both sides
at least the shortest clip: paragraph breaks before sentence ends, sentence ends before commas. A pause
of ``break_pause`` or more always ends a clip (no clip holds a chapter break). Each clip keeps up to
``keep_silence`` of the pause on each side (never more than half of it, so clips never overlap).

A piece of speech that no pause splits below the longest clip is never cut: it is reported too long.

Consecutive clips travel together, in windows of up to ``WINDOW_SECONDS`` of the recording: one engine
item and one journal record per window, not per clip (a few large items, each worth decoding a stretch).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["WINDOW_SECONDS", "Piece", "Window", "plan_pieces", "plan_windows"]

WINDOW_SECONDS = 28.0  # under Whisper's 30-s window, with room for its timestamp rounding


@dataclass(frozen=True)
class Piece:
    """A stretch of speech cut out of the recording, in seconds: ``start``/``end`` with the kept silence,
    ``speech_start``/``speech_end`` without it. ``index``: its position in the recording."""

    index: int
    start: float
    end: float
    speech_start: float
    speech_end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def to_list(self) -> list[float]:
        return [self.index, self.start, self.end, self.speech_start, self.speech_end]

    @classmethod
    def from_list(cls, data: Sequence[float]) -> Piece:
        """The piece :meth:`to_list` wrote; ValueError for anything else (a damaged or edited plan)."""
        index, start, end, speech_start, speech_end = data
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError("piece: bad index")
        times = [float(t) for t in (start, end, speech_start, speech_end)]
        if not 0.0 <= times[0] <= times[2] <= times[3] <= times[1] < 1e9:  # NaN fails too
            raise ValueError("piece: times out of order")
        return cls(index, *times)


@dataclass(frozen=True)
class Window:
    """Consecutive pieces transcribed together: the recording from ``start`` to ``end`` (seconds)."""

    index: int
    start: float
    end: float
    pieces: tuple[Piece, ...]


def _split(starts: np.ndarray, ends: np.ndarray, min_s: float, max_s: float, break_s: float) -> list[tuple[int, int]]:
    """Groups ``[first, last]`` of speech runs, each run ``[starts[i], ends[i])`` in seconds."""
    count = len(starts)
    if count == 0:
        return []
    pauses = starts[1:] - ends[:-1]  # pause i lies between run i and run i + 1
    groups: list[tuple[int, int]] = []
    # Hard breaks first: every long pause ends a clip.
    bounds = [0, *(np.flatnonzero(pauses >= break_s) + 1).tolist(), count]
    stack = [(a, b - 1) for a, b in itertools.pairwise(bounds)][::-1]
    while stack:
        first, last = stack.pop()
        if ends[last] - starts[first] <= max_s or first == last:
            groups.append((first, last))
            continue
        inner = pauses[first:last]  # the pauses between the group's runs
        left = ends[first:last] - starts[first]  # the speech before each pause
        right = ends[last] - starts[first + 1 : last + 1]  # and after it
        fair = (left >= min_s) & (right >= min_s)
        # The longest pause that leaves both sides a usable clip; failing that, the longest pause.
        choice = np.where(fair, inner, -1.0) if fair.any() else inner
        cut = first + int(np.argmax(choice))
        stack.append((cut + 1, last))
        stack.append((first, cut))
    return groups


def plan_pieces(
    runs: Sequence[tuple[float, float]],
    total: float,
    min_seconds: float,
    max_seconds: float,
    keep_silence: float,
    break_pause: float,
) -> list[Piece]:
    """The pieces of a recording ``total`` seconds long whose speech runs (seconds, in order) are ``runs``."""
    if not runs:
        return []
    starts = np.array([r[0] for r in runs], dtype=np.float64)
    ends = np.array([r[1] for r in runs], dtype=np.float64)
    groups = _split(starts, ends, min_seconds, max_seconds - 2 * keep_silence, break_pause)
    pieces = []
    for index, (first, last) in enumerate(groups):
        before = starts[first] - (ends[first - 1] if first > 0 else 0.0)
        after = (starts[last + 1] if last + 1 < len(starts) else total) - ends[last]
        # Half of a pause at most: the neighbour keeps the other half. The recording's own edges are
        # not shared with anyone.
        lead = min(keep_silence, before / 2 if first > 0 else before)
        trail = min(keep_silence, after / 2 if last + 1 < len(starts) else after)
        speech_start, speech_end = float(starts[first]), float(ends[last])
        pieces.append(Piece(index, max(0.0, speech_start - lead), min(total, speech_end + trail), speech_start,
                            speech_end))  # fmt: skip
    return pieces


def plan_windows(pieces: Sequence[Piece], window_seconds: float = WINDOW_SECONDS) -> list[Window]:
    """Consecutive pieces grouped into windows of at most ``window_seconds`` of the recording (a piece
    longer than that is a window of its own: Whisper then decodes it in several 30-s steps)."""
    windows: list[Window] = []
    group: list[Piece] = []
    for piece in pieces:
        if group and piece.end - group[0].start > window_seconds:
            windows.append(Window(len(windows), group[0].start, group[-1].end, tuple(group)))
            group = []
        group.append(piece)
    if group:
        windows.append(Window(len(windows), group[0].start, group[-1].end, tuple(group)))
    return windows
