"""The cut planner of ``voxmill segment`` (segment/cuts.py) on hand-made speech runs: no audio, no model."""

from __future__ import annotations

import itertools
import json
import math
import time

import numpy as np
import pytest

from voxmill.segment.cuts import WINDOW_SECONDS, Piece, plan_pieces, plan_windows

# The defaults of SegmentOptions: 1-15 s clips, 0.25 s of pause kept each side, 2 s pauses always cut.
MIN, MAX, KEEP, BREAK = 1.0, 15.0, 0.25, 2.0


def _runs(speech: list[float], pauses: list[float], lead: float = 0.5) -> list[tuple[float, float]]:
    """Speech runs of the given lengths, separated by the given pauses, starting at ``lead`` seconds."""
    assert len(pauses) == len(speech) - 1
    runs, at = [], lead
    for n, length in enumerate(speech):
        runs.append((at, at + length))
        at += length + (pauses[n] if n < len(pauses) else 0.0)
    return runs


def _plan(runs: list[tuple[float, float]], total: float | None = None, **kw: float) -> list[Piece]:
    opts = {"min_seconds": MIN, "max_seconds": MAX, "keep_silence": KEEP, "break_pause": BREAK, **kw}
    end = total if total is not None else (runs[-1][1] + 1.0 if runs else 10.0)
    return plan_pieces(runs, end, opts["min_seconds"], opts["max_seconds"], opts["keep_silence"], opts["break_pause"])


def _groups(pieces: list[Piece], runs: list[tuple[float, float]]) -> list[list[int]]:
    """Which runs each piece holds (by the piece's speech bounds)."""
    return [[i for i, (s, e) in enumerate(runs) if p.speech_start <= s and e <= p.speech_end] for p in pieces]


def _check_invariants(pieces: list[Piece], runs: list[tuple[float, float]], total: float, max_s: float,
                      keep: float) -> None:  # fmt: skip
    groups = _groups(pieces, runs)
    # Every run in exactly one piece, in order: a cut never falls inside a run (inside a word).
    assert [i for g in groups for i in g] == list(range(len(runs)))
    for n, (piece, group) in enumerate(zip(pieces, groups, strict=True)):
        assert piece.index == n
        assert (piece.speech_start, piece.speech_end) == (runs[group[0]][0], runs[group[-1]][1])
        assert 0.0 <= piece.start <= piece.speech_start < piece.speech_end <= piece.end <= total
        assert piece.speech_start - piece.start <= keep + 1e-9 and piece.end - piece.speech_end <= keep + 1e-9
        # Longer than the longest clip only when one run alone is (speech no pause splits).
        assert piece.seconds <= max_s + 1e-9 or len(group) == 1, (piece, group)
    for a, b in itertools.pairwise(pieces):
        assert a.end <= b.start  # never overlapping: each keeps at most half of the pause between them


def test_no_runs_no_pieces_no_windows() -> None:
    assert _plan([], total=60.0) == []
    assert plan_windows([]) == []


def test_short_speech_is_one_piece_with_silence_kept_at_both_edges() -> None:
    runs = _runs([2.0, 3.0, 1.5], [0.4, 0.6])
    (piece,) = _plan(runs, total=9.0)
    assert (piece.speech_start, piece.speech_end) == (runs[0][0], runs[-1][1])
    assert piece.start == pytest.approx(runs[0][0] - KEEP) and piece.end == pytest.approx(runs[-1][1] + KEEP)


def test_recording_edges_bound_the_kept_silence() -> None:
    (piece,) = _plan([(0.1, 3.0)], total=3.05)
    assert piece.start == 0.0 and piece.end == pytest.approx(3.05)  # not below 0 nor past the end


def test_long_speech_is_cut_at_its_longest_pause() -> None:
    runs = _runs([4.0, 4.0, 4.0, 4.0], [0.3, 0.9, 0.5])  # 17.7 s of speech with pauses: too long for one clip
    pieces = _plan(runs)
    assert _groups(pieces, runs) == [[0, 1], [2, 3]]
    _check_invariants(pieces, runs, runs[-1][1] + 1.0, MAX, KEEP)


def test_the_cut_leaves_both_sides_a_usable_clip_when_it_can() -> None:
    # The longest pause would leave a 0.5-s clip (under --min-seconds): the next longest is taken instead.
    runs = _runs([0.5, 7.0, 7.0], [1.5, 0.5])
    assert _groups(_plan(runs), runs) == [[0, 1], [2]]
    # Where no pause leaves both sides long enough, the longest pause still cuts.
    runs = _runs([0.5, 13.5, 0.6], [1.0, 0.3])
    assert _groups(_plan(runs), runs) == [[0], [1, 2]]


def test_a_break_pause_always_cuts_and_a_shorter_one_does_not() -> None:
    runs = _runs([1.5, 1.5], [BREAK])
    assert _groups(_plan(runs), runs) == [[0], [1]]
    runs = _runs([1.5, 1.5], [BREAK - 0.01])
    assert _groups(_plan(runs), runs) == [[0, 1]]
    runs = _runs([1.5, 1.5, 1.5], [0.5, 5.0])  # a chapter break: never inside a clip
    assert _groups(_plan(runs, break_pause=3.0), runs) == [[0, 1], [2]]


def test_recursive_cuts_keep_every_piece_within_the_bounds() -> None:
    # 60 s of sentences (2-4 s) with sentence pauses (0.8 s) and commas (0.45 s): several levels of cuts.
    rng = np.random.default_rng(7)
    speech = rng.uniform(2.0, 4.0, 20).tolist()
    pauses = rng.choice([0.45, 0.8], 19).tolist()
    runs = _runs(speech, pauses)
    total = runs[-1][1] + 0.5
    for max_s in (5.0, 8.0, 15.0):
        pieces = _plan(runs, total, max_seconds=max_s)
        _check_invariants(pieces, runs, total, max_s, KEEP)
        assert len(pieces) >= math.ceil((runs[-1][1] - runs[0][0]) / max_s)


def test_an_unpausable_run_is_kept_whole() -> None:
    (piece,) = _plan([(1.0, 41.0)], total=42.0)  # 40 s without a pause: never cut inside speech
    assert (piece.speech_start, piece.speech_end) == (1.0, 41.0) and piece.seconds > MAX
    runs = [(0.5, 3.0), (3.5, 40.0), (40.5, 43.0)]  # and its neighbours still get their own pieces
    pieces = _plan(runs, total=44.0)
    assert _groups(pieces, runs) == [[0], [1], [2]]
    _check_invariants(pieces, runs, 44.0, MAX, KEEP)


def test_kept_silence_never_takes_more_than_half_a_pause() -> None:
    runs = _runs([3.0, 3.0], [BREAK + 0.2])  # a wide pause: the full keep_silence each side
    first, second = _plan(runs, keep_silence=0.5)
    assert first.end - first.speech_end == pytest.approx(0.5)
    assert second.speech_start - second.start == pytest.approx(0.5)
    runs = _runs([9.0, 9.0], [0.3])  # a narrow one: half each, touching, not overlapping
    first, second = _plan(runs, keep_silence=0.5)
    assert first.end == pytest.approx(runs[0][1] + 0.15) and second.start == pytest.approx(runs[1][0] - 0.15)
    assert first.end <= second.start


@pytest.mark.parametrize("seed", range(20))
def test_random_runs_hold_every_invariant(seed: int) -> None:
    rng = np.random.default_rng(seed)
    count = int(rng.integers(1, 400))
    speech = rng.uniform(0.1, rng.choice([3.0, 20.0]), count)
    pauses = rng.choice([0.064, 0.096, 0.3, 0.45, 0.8, 1.4, 2.6, 6.0], count - 1)
    runs = _runs(speech.tolist(), pauses.tolist(), lead=float(rng.uniform(0, 2)))
    total = runs[-1][1] + float(rng.uniform(0, 3))
    max_s = float(rng.uniform(3.0, 30.0))
    keep = float(rng.uniform(0.0, max_s / 4))
    pieces = _plan(runs, total, max_seconds=max_s, keep_silence=keep, min_seconds=float(rng.uniform(0, 2)))
    _check_invariants(pieces, runs, total, max_s, keep)
    # A pause of break_pause or more never lies inside a piece.
    for (_, end), (start, _) in itertools.pairwise(runs):
        if start - end >= BREAK:
            assert not any(p.speech_start <= end and start <= p.speech_end for p in pieces)


def _timed_plan(runs: list[tuple[float, float]]) -> tuple[list[Piece], float]:
    start = time.perf_counter()
    pieces = _plan(runs)
    return pieces, time.perf_counter() - start


def test_a_huge_count_of_runs_is_planned_fast() -> None:
    # 200k runs: about 60 hours of speech. Measured ~0.7 s; the bound only catches a quadratic planner.
    rng = np.random.default_rng(1)
    n = 200_000
    speech = 0.032 * rng.integers(4, 100, n)
    pauses = 0.032 * rng.integers(2, 40, n)  # VAD pauses come in 32-ms steps
    ends = np.cumsum(speech + pauses)
    runs = list(zip((ends - speech).tolist(), ends.tolist(), strict=True))
    pieces, seconds = _timed_plan(runs)
    assert len(pieces) > n // 10 and seconds < 20, seconds
    assert sum(len(w.pieces) for w in plan_windows(pieces)) == len(pieces)


def test_equal_pauses_everywhere_are_planned_fast() -> None:
    # Every pause the same length (ties for the longest pause everywhere): 50k runs, ~11 hours.
    # Measured ~1 s (the split then peels a clip at a time, so it grows faster than linearly).
    n = 50_000
    runs = _runs([0.5] * n, [0.3] * (n - 1))
    pieces, seconds = _timed_plan(runs)
    assert all(p.seconds <= MAX for p in pieces) and seconds < 30, seconds


# ---- windows ----------------------------------------------------------------------------------------


def _pieces(spans: list[tuple[float, float]]) -> list[Piece]:
    return [Piece(n, s, e, s, e) for n, (s, e) in enumerate(spans)]


def test_windows_group_consecutive_pieces_up_to_the_window_length() -> None:
    rng = np.random.default_rng(3)
    spans, at = [], 0.0
    for length in rng.uniform(0.5, 14.0, 300):
        spans.append((at, at + float(length)))
        at += float(length) + float(rng.uniform(0.0, 3.0))
    spans.append((at, at + 45.0))  # longer than a window: a window of its own
    pieces = _pieces(spans)
    windows = plan_windows(pieces)
    assert [p for w in windows for p in w.pieces] == pieces  # each piece once, in order
    assert [w.index for w in windows] == list(range(len(windows)))
    for window in windows:
        assert (window.start, window.end) == (window.pieces[0].start, window.pieces[-1].end)
        assert window.end - window.start <= WINDOW_SECONDS or len(window.pieces) == 1
    for a, b in itertools.pairwise(windows):
        assert a.end <= b.start
        assert b.pieces[0].end - a.start > WINDOW_SECONDS  # greedy: the next piece did not fit
    assert windows[-1].pieces == (pieces[-1],)


def test_window_length_is_an_option() -> None:
    pieces = _pieces([(0, 2), (3, 5), (6, 8), (9, 11)])
    assert [len(w.pieces) for w in plan_windows(pieces, window_seconds=5.0)] == [2, 2]
    assert [len(w.pieces) for w in plan_windows(pieces, window_seconds=100.0)] == [4]


# ---- the plan as it is kept on disk ------------------------------------------------------------------


def test_a_piece_survives_its_json_round_trip() -> None:
    piece = Piece(12, 30.5, 41.25, 30.75, 41.0)
    assert Piece.from_list(json.loads(json.dumps(piece.to_list()))) == piece
    assert Piece.from_list([0, 0, 0, 0, 0]) == Piece(0, 0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "data",
    [
        [-1, 0.0, 2.0, 0.5, 1.5],  # negative index
        [True, 0.0, 2.0, 0.5, 1.5],  # a bool is not an index
        [1.0, 0.0, 2.0, 0.5, 1.5],  # nor a float
        ["1", 0.0, 2.0, 0.5, 1.5],
        [1, 2.0, 0.0, 0.5, 1.5],  # start after end
        [1, 0.0, 2.0, 1.5, 0.5],  # speech ends before it starts
        [1, 0.6, 2.0, 0.5, 1.5],  # speech starts before the piece
        [1, 0.0, 1.4, 0.5, 1.5],  # speech ends after the piece
        [1, -0.5, 2.0, 0.5, 1.5],  # before the recording
        [1, 0.0, math.nan, 0.5, 1.5],
        [1, 0.0, math.inf, 0.5, 1.5],
        [1, 0.0, 2e9, 0.5, 1.5],
        [1, "x", 2.0, 0.5, 1.5],
        [1, 0.0, 2.0, 0.5],  # too short
        [1, 0.0, 2.0, 0.5, 1.5, 3.0],  # too long
    ],
)
def test_a_damaged_piece_is_refused(data: list[object]) -> None:
    with pytest.raises(ValueError):
        Piece.from_list(data)  # type: ignore[arg-type]


def test_a_piece_with_a_null_time_is_refused() -> None:
    # float(None) raises TypeError; the caller (run._plan) treats TypeError as a damaged plan too.
    with pytest.raises((ValueError, TypeError)):
        Piece.from_list([1, None, 2.0, 0.5, 1.5])  # type: ignore[list-item]
