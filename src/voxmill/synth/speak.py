"""Pieces of text spoken in parallel, in order: the one Pool of a synth run and the chunks it yields."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from voxmill.engine import Ok, Outcome, Pool, ThreadPlan, usable_cores
from voxmill.models import ModelSpec
from voxmill.synth.options import SynthOptions
from voxmill.synth.task import SpeakItem, SpeakTask, Speech
from voxmill.synth.voice import speaker_id, voice_config
from voxmill.text.split import Piece

__all__ = ["AudioChunk", "Speaker"]

SPARE_PIECES = 12
# The last pieces of a run are handed out longest first (and put back in order): in text order, the
# run ended with one worker on a long piece while the others had nothing left. Measured on
# tests/data/mill.md: its last piece (154 characters) ran 0.37 s alone, 4% of the run.
TAIL_PIECES = 8


@dataclass(frozen=True)
class AudioChunk:
    """One piece of text spoken: ``samples`` (float32, the voice's level) then ``pause`` seconds of silence."""

    samples: np.ndarray
    sample_rate: int
    text: str
    chapter: int
    paragraph: int
    sentence: int
    pause: float

    def with_pause(self) -> np.ndarray:
        return np.concatenate([self.samples, np.zeros(round(self.pause * self.sample_rate), np.float32)])


def _task(spec: ModelSpec, opts: SynthOptions) -> SpeakTask:
    config = voice_config(spec)
    return SpeakTask(
        spec,
        config.length_scale if opts.length_scale is None else opts.length_scale,
        config.noise_scale if opts.noise_scale is None else opts.noise_scale,
        config.noise_w if opts.noise_w is None else opts.noise_w,
        speaker_id(spec, opts.speaker),
    )


class Speaker:
    """Speaks the pieces of chapters with one voice on one :class:`Pool` (built once per run).

    A piece that failed yields a chunk without samples and is listed in ``failures``; ``spoken``
    counts the pieces spoken; ``plan`` is the pool's worker plan (None until something was spoken).
    """

    def __init__(self, spec: ModelSpec, opts: SynthOptions) -> None:
        self.sample_rate = voice_config(spec).sample_rate
        self.failures: list[str] = []
        self.spoken = 0
        self._opts = opts
        self._task = _task(spec, opts)
        # Pieces in flight: the engine's 2 per worker, and SPARE_PIECES more. A long piece at the head of
        # the order holds its place in the window while the other workers finish the short ones behind it;
        # with only 2 per worker they then sat idle until it was done (measured on the technical text of
        # benchmarks/texts: dips to 1.3-1.6 busy cores of 2; none with 12 more). At most that many spoken
        # pieces wait in memory (max_chars each: ~2 MB at 300 characters).
        window = 2 * usable_cores() + SPARE_PIECES
        self._pool = Pool.from_options(opts.engine_run(), description="speaking", window=window)

    @property
    def plan(self) -> ThreadPlan | None:
        return self._pool.plan if self.spoken else None

    def chunks(
        self, pieces: Sequence[Sequence[Piece]], skip: set[int] | frozenset[int] = frozenset()
    ) -> Iterator[AudioChunk]:
        """AudioChunks of every chapter not in ``skip``, in order."""
        items = [SpeakItem(c, i, piece.text) for c, chapter in enumerate(pieces) if c not in skip
                 for i, piece in enumerate(chapter)]  # fmt: skip
        if not items:
            return
        order = _hand_out(items, max(TAIL_PIECES, 2 * usable_cores()))
        for outcome in _in_order(self._pool.imap(self._task, [items[i] for i in order]), order):
            item: SpeakItem = outcome.item
            piece = pieces[item.chapter][item.index]
            result = outcome.result
            self.spoken += 1
            if isinstance(result, Ok) and isinstance(result.value, Speech):
                samples = result.value.audio.take()
            else:
                self.failures.append(f"chapter {item.chapter + 1}, {piece.text[:50]!r}: {result}")
                samples = np.zeros(0, np.float32)
            yield AudioChunk(samples, self.sample_rate, piece.text, item.chapter, piece.paragraph, piece.sentence,
                             self._opts.pause(piece))  # fmt: skip


def _hand_out(items: Sequence[SpeakItem], tail: int) -> list[int]:
    """The order ``items`` go to the workers in (their positions): the text's, but the last ``tail`` by
    length, longest first (longest-processing-time-first on the tail only: a stream still gets the start
    of the text first)."""
    head = max(0, len(items) - tail)
    return list(range(head)) + sorted(range(head, len(items)), key=lambda i: len(items[i].text), reverse=True)


def _in_order(outcomes: Iterator[Outcome], order: list[int]) -> Iterator[Outcome]:
    """``outcomes`` of the items handed out in ``order`` (``outcome.index`` is a place in it), back in the
    items' own order: an outcome that comes early waits (at most the reordered tail's audio)."""
    waiting: dict[int, Outcome] = {}
    due = 0
    try:
        for outcome in outcomes:
            waiting[order[outcome.index]] = outcome
            while due in waiting:
                yield waiting.pop(due)
                due += 1
    finally:  # the consumer stopped early: what still waits is never taken, its shared file goes now
        for outcome in waiting.values():
            if isinstance(outcome.result, Ok) and isinstance(outcome.result.value, Speech):
                outcome.result.value.audio.release()
