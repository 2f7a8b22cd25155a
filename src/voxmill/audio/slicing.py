"""Cut a long recording into chunks at silences, streaming: one pass, memory of about one chunk.

Cuts go in pauses (RMS below a threshold, or outside Silero VAD speech), so chunks join without any
audible seam. Where speech runs on past the longest chunk allowed, the cut is forced at the
quietest point of a search window and marked, so the stitcher crossfades there. Long pauses are cut
out as silent chunks of their own, which skip the processor.

The limits that depend on each other (the shortest chunk and the search window at most the longest,
the context at pauses at most the context at forced cuts, the crossfade at most the context both
sides processed, the context at most what fits in the search window) are clamped here, in
:meth:`SliceOptions.checked`, and nowhere else.

A chunk that begins or ends at a forced cut is never shorter than the longest crossfade there (twice
``pad_seconds``) and a hop: the stitcher fades over ``[cut - half, cut + half)`` of both chunks, and
a chunk shorter than its fades cannot be placed. Without that floor, a forced cut searched the whole
chunk when the tail split shrank it to the search window, and picked a quiet hop 10 ms in: at
another output rate (``convert --sample-rate 16000``) the stitcher then stopped with a ValueError.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from voxmill import errors
from voxmill.audio.types import Block

if TYPE_CHECKING:
    from voxmill.audio.vad import SpeechDetector

__all__ = ["MAX_CHUNK_SECONDS", "Chunk", "SliceOptions", "slice_blocks"]

# A chunk is held whole by a worker (and a few wait in the engine's window): ten minutes bounds that,
# and is far past where cutting at pauses stops mattering for any processor.
MAX_CHUNK_SECONDS = 600.0


@dataclass(frozen=True)
class SliceOptions:
    """Where chunks may be cut. Times in seconds unless named otherwise."""

    max_seconds: float = 30.0
    """A chunk is never longer: past it the cut is forced (and crossfaded)."""
    min_seconds: float = 5.0
    """No cut at a pause before this (a long pause still becomes its own silent chunk)."""
    threshold_db: float = -40.0
    """A hop whose RMS is below this (dBFS) is silent."""
    min_silence_ms: float = 300.0
    """A pause at least this long is a place to cut."""
    hop_ms: float = 10.0
    """Resolution of the RMS (and of every cut point)."""
    max_silence_kept_ms: float = 250.0
    """Silence a chunk keeps at each edge; the rest of a longer pause is a silent chunk."""
    search_seconds: float = 2.0
    """A forced cut goes at the quietest hop of this last stretch before the maximum."""
    vad: bool = False
    """Pauses from Silero VAD (non-speech) instead of the RMS threshold: for noisy recordings."""
    tail_split: int = 8
    """Near the end a chunk is at most the remaining audio over this (balances up to ~8 workers)."""
    pad_seconds: float = 0.1
    """Context beside a cut forced inside speech, processed and trimmed after, so edges sound as mid-file."""
    pause_pad_seconds: float = 0.05
    """Context beside a cut in a pause (only silence is there: a little is enough for analysis windows)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first value out of its range (NaN is out of every range)."""
        self.checked()

    def checked(self) -> SliceOptions:
        """These options with each value checked against its own range (ConfigError naming the first
        bad one; NaN is out of every range) and the limits that depend on each other clamped: the
        shortest chunk and the search window at most the longest chunk, the context at pauses at most
        the context at forced cuts. The one place slicing limits are reconciled."""
        hop_s = self.hop_ms / 1000 if _number(self.hop_ms) else 0.0
        checks = [
            ("--chunk-seconds", "chunk length (s)", self.max_seconds, 1.0, MAX_CHUNK_SECONDS),
            ("--min-chunk-seconds", "minimum chunk length (s)", self.min_seconds, 0.0, MAX_CHUNK_SECONDS),
            ("--threshold-db", "silence threshold (dBFS)", self.threshold_db, -120.0, -0.1),
            ("hop_ms", "hop (ms)", self.hop_ms, 1.0, 100.0),
            ("--min-silence-ms", "minimum silence (ms)", self.min_silence_ms, self.hop_ms, 60_000.0),
            ("--max-silence-kept-ms", "silence kept (ms)", self.max_silence_kept_ms, 0.0, 60_000.0),
            # A forced cut searches at least a few hops (fewer left nothing to choose from).
            ("search_seconds", "search window (s)", self.search_seconds, max(0.1, 4 * hop_s), MAX_CHUNK_SECONDS),
            ("pad_seconds", "context padding (s)", self.pad_seconds, 0.0, 10.0),
            ("pause_pad_seconds", "context padding at pauses (s)", self.pause_pad_seconds, 0.0, 10.0),
            ("tail_split", "tail split", self.tail_split, 1, 1000),
        ]
        for name, what, value, low, high in checks:
            if not (_number(value) and low <= value <= high):  # NaN fails both sides
                raise errors.ConfigError(f"{name} {value}: {what} must be between {low:g} and {high:g}")
        if not isinstance(self.tail_split, int) or isinstance(self.tail_split, bool):
            raise errors.ConfigError(f"tail_split {self.tail_split!r}: must be a whole number")
        search = min(self.search_seconds, self.max_seconds)
        # A forced chunk holds both its fades (2 x pad) and a hop; the shortest forced chunk is the
        # search window (the tail split shrinks chunks to no less), so the context fits in it.
        pad = min(self.pad_seconds, max(0.0, (search - hop_s) / 2))
        return dataclasses.replace(
            self,
            min_seconds=min(self.min_seconds, self.max_seconds),
            search_seconds=search,
            pad_seconds=pad,
            pause_pad_seconds=min(self.pause_pad_seconds, pad),
        )

    def crossfade_ms(self, requested_ms: float) -> float:
        """The crossfade at a cut forced inside speech: ``requested_ms``, at most the context both
        chunks processed there (twice ``pad_seconds``): past it, one side would fade into silence."""
        return min(requested_ms, 2000.0 * self.pad_seconds)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Chunk:
    """One chunk: its own samples ``[start, end)`` (absolute) and the padded samples around them.

    ``samples`` holds ``[start - pad_left, end + pad_right)``. ``forced_start``/``forced_end`` mark
    cuts inside speech (crossfade there); ``silent`` chunks hold no sound above the threshold.
    """

    index: int
    start: int
    end: int
    pad_left: int
    samples: np.ndarray
    sample_rate: int
    silent: bool
    forced_start: bool
    forced_end: bool

    @property
    def pad_right(self) -> int:
        return self.samples.shape[0] - self.pad_left - (self.end - self.start)

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / self.sample_rate


def _silent_hops(
    samples: np.ndarray, sr: int, hop: int, opts: SliceOptions, detector: SpeechDetector | None
) -> np.ndarray:
    """One bool per whole hop: True where the recording pauses."""
    count = samples.shape[0] // hop
    frames = samples[: count * hop].reshape(count, hop)
    power = np.einsum("ij,ij->i", frames, frames) / hop
    if not opts.vad:
        return np.asarray(power < 10 ** (opts.threshold_db / 10))
    from voxmill.audio.vad import speech_segments

    quiet = np.ones(count, dtype=bool)
    for segment in speech_segments(samples[: count * hop], sr, detector=detector):
        quiet[segment.start // hop : -(-segment.end // hop)] = False
    return quiet


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def _decide(
    buf: np.ndarray,
    sr: int,
    at_end: bool,
    opts: SliceOptions,
    longest: float,
    detector: SpeechDetector | None,
    forced_start: bool = False,
) -> tuple[int, bool, bool]:
    """(cut, silent, forced): where the chunk at the head of ``buf`` ends.

    ``buf`` holds at least ``max_seconds`` (more when context follows) unless ``at_end``.
    ``forced_start``: the chunk begins at a forced cut, so it must hold that cut's fade.
    """
    hop = max(1, round(sr * opts.hop_ms / 1000))
    limit = min(buf.shape[0], round(longest * sr))
    # The fewest hops of a chunk beside a forced cut: both fades (at most 2 x pad) and a hop for rounding.
    fade = math.ceil(2 * opts.pad_seconds * sr / hop) + 1
    if at_end and buf.shape[0] <= limit + fade * hop:
        # All of it, also a little past the limit: a forced cut would leave a last chunk shorter than its fade.
        quiet = _silent_hops(buf, sr, hop, opts, detector)
        return buf.shape[0], bool(quiet.size and quiet.all()), False
    window = buf[: limit + hop]  # one hop past the limit tells whether a pause goes on there
    quiet = _silent_hops(window, sr, hop, opts, detector)
    hops_limit = limit // hop
    keep = round(opts.max_silence_kept_ms / opts.hop_ms)
    min_run = max(1, round(opts.min_silence_ms / opts.hop_ms))
    runs = _runs(quiet)
    shortest = fade if forced_start else 1  # in hops
    if runs and runs[0][0] == 0:
        first_end = min(runs[0][1], hops_limit)
        if first_end - keep >= max(min_run, shortest):  # a long pause opens the chunk: a silent chunk
            return (first_end - keep if runs[0][1] <= hops_limit else first_end) * hop, True, False
    min_hops = max(math.ceil(opts.min_seconds * sr / hop), shortest)
    best = None
    for start, end in runs:
        if end - start < min_run or start == 0:
            continue
        cut = start + min(keep, (end - start) // 2)  # keep at most `keep` of the pause at the chunk's end
        if min_hops <= cut <= hops_limit:
            best = cut
    if best is not None:
        return best * hop, False, False
    # Speech all the way: cut at the quietest hop near the limit, and crossfade there; never so near the
    # chunk's start, nor (at the end) its end, that a chunk is shorter than its fades.
    lo = max(1, fade, hops_limit - max(1, round(opts.search_seconds * sr / hop)))
    hi = hops_limit if not at_end else min(hops_limit, (buf.shape[0] - fade * hop) // hop)
    if lo >= hi:  # no room to choose (a whole-number hop count rounds it away): cut at the limit
        return max(1, hops_limit) * hop, False, True
    frames = window[lo * hop : hi * hop].reshape(hi - lo, hop)
    power = np.einsum("ij,ij->i", frames, frames)
    return (lo + int(np.argmin(power))) * hop, False, True


def slice_blocks(
    blocks: Iterable[Block],
    opts: SliceOptions | None = None,
    total: int | None = None,
    detector: SpeechDetector | None = None,
) -> Iterator[Chunk]:
    """Chunks of a block stream, in order; their ``[start, end)`` tile the whole recording.

    Blocks are mono ``(frames,)`` or ``(frames, channels)``; cuts are decided on the channels' mix
    and every chunk carries all channels.

    With the recording's length (``total`` samples), chunks shrink towards the end (guided
    scheduling: at most the remaining audio over ``tail_split``, never under ``min_seconds``), so
    parallel workers finish together instead of one waiting on a last full-length chunk. The cuts
    do not depend on the number of workers: any worker count gives the same chunks.

    ``detector``: the Silero VAD (leased from a model manager) that finds pauses with ``opts.vad``;
    None uses the process's own.
    """
    opts = (opts or SliceOptions()).checked()
    buf = np.zeros(0, dtype=np.float32)
    before = buf  # context preceding ``buf``
    start = 0
    index = 0
    forced_start = False
    sr = 0
    it = iter(blocks)
    exhausted = False
    while True:
        need = 0 if sr == 0 else round(opts.max_seconds * sr) + round(opts.pad_seconds * sr) + 1
        while not exhausted and (sr == 0 or buf.shape[0] < need):
            try:
                block = next(it)
            except StopIteration:
                exhausted = True
                break
            if block.samples.ndim not in (1, 2):
                raise ValueError("slice_blocks takes (frames,) or (frames, channels) blocks")
            if sr == 0:
                sr = block.sample_rate
                need = round(opts.max_seconds * sr) + round(opts.pad_seconds * sr) + 1
                before = block.samples[:0]
            buf = np.concatenate((buf, block.samples)) if buf.size else block.samples
        if buf.shape[0] == 0:
            return
        longest = opts.max_seconds
        if total is not None and opts.tail_split > 1:
            remaining = (total - start) / sr
            longest = min(longest, max(opts.min_seconds, opts.search_seconds, remaining / opts.tail_split))
        mix = buf if buf.ndim == 1 else buf.mean(axis=1, dtype=np.float32)  # mono: no copy
        cut, silent, forced = _decide(mix, sr, exhausted, opts, longest, detector, forced_start)
        cut = max(1, min(cut, buf.shape[0]))
        pad = round(opts.pad_seconds * sr)
        # Full context only where a cut was forced inside speech: there the processor must see across
        # the cut and the crossfade needs both sides. At a pause a little is enough (measured: full
        # context at every cut cost 4% more audio to process on a 10-minute recording).
        light = round(opts.pause_pad_seconds * sr)
        left = before[max(0, before.shape[0] - (pad if forced_start else light)) :]
        right = buf[cut : cut + (pad if forced else light)]
        samples = np.concatenate((left, buf[:cut], right))
        yield Chunk(index, start, start + cut, left.shape[0], samples, sr, silent, forced_start, forced)
        before = buf[max(0, cut - pad) : cut]
        buf = buf[cut:].copy()  # drop the reference to the consumed head: memory stays at one window
        start += cut
        index += 1
        forced_start = forced
