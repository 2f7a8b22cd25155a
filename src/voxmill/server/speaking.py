"""The speaking side of ``POST /v1/audio/speech`` and the web UI's Speak tab: which voice a request
names, its text planned in pieces with their pauses, and the pieces run on the scheduler in order, a few
ahead of the one being sent.

The text is planned as ``voxmill synth`` plans it (chapters, sentences, pieces of at most 300
characters, the pauses between them); the first piece is cut shorter still (about 40 characters, at a
clause or a word), so the first audio leaves within a few tenths of a second whatever the text.
``workers + 1`` pieces are in flight per request: memory stays bounded however long the text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import numpy as np

from voxmill import errors
from voxmill.audio.analysis import sound_bounds
from voxmill.models import ModelSpec
from voxmill.server.problems import ApiError
from voxmill.server.scheduler import Busy, Scheduler
from voxmill.server.state import OPENAI_TTS_MODELS, OPENAI_VOICES, ServerState
from voxmill.synth.book import Book
from voxmill.synth.options import SynthOptions
from voxmill.synth.task import speak_text
from voxmill.synth.voice import speaker_id, voice_config
from voxmill.text.split import split_long

__all__ = ["KIND", "Pieces", "SpeechPlan", "Speaking", "choose_voice", "plan_speech", "speak_to_array"]

# The first piece is cut this short (at a clause, else a word): ~2.5 s of speech, spoken in ~0.2 s on
# one thread here; the rest of its sentence is spoken meanwhile on another worker.
FIRST_PIECE_CHARS = 40
# The rest of the first sentence, in pieces short enough to be spoken before the first has played
# (with 2x to spare for a loaded machine); later pieces have all the earlier audio's time.
SECOND_PIECE_CHARS = 150
KIND = "piper"


@dataclass(frozen=True)
class SpeechPlan:
    """What one request says: the voice, Piper's settings (a ``SynthesisConfig``), and each piece's
    text with the seconds of silence after it."""

    spec: ModelSpec
    config: Any
    pieces: list[tuple[str, float]]

    @property
    def sample_rate(self) -> int:
        return voice_config(self.spec).sample_rate

    def render(self, voice: Any, index: int) -> np.ndarray:
        """Piece ``index`` spoken by ``voice`` (the leased model), trimmed, its pause after it (a worker job)."""
        text, pause = self.pieces[index]
        rate = self.sample_rate
        audio = speak_text(voice, text, self.config)
        start, end = sound_bounds(audio, rate) if audio.size else (0, 0)
        spoken = audio[start:end] if end > start else audio[:0]
        return np.concatenate([spoken, np.zeros(round(pause * rate), np.float32)])


MAX_SILENCE_SECONDS = 3600.0


def plan_speech(
    spec: ModelSpec,
    text: str,
    speed: float = 1.0,
    noise_scale: float | None = None,
    noise_w: float | None = None,
    sentence_silence: float | None = None,
    speaker: int | str | None = None,
    first_cut: bool = True,
) -> SpeechPlan:
    """``text`` in pieces as synth splits it; ConfigError (400) for nothing to say, a text the voice
    cannot read, or a speaker the voice does not have. ``speed`` divides the voice's length scale and
    every pause; ``sentence_silence`` is at speed 1. ``first_cut``: cut the first piece short (not for
    the later parts of a streamed text, whose audio is not the first a listener waits for)."""
    from piper import SynthesisConfig

    config = voice_config(spec)
    opts = SynthOptions() if sentence_silence is None else SynthOptions(sentence_silence=sentence_silence)
    book = Book.plan(text, False, spec, opts)
    pieces: list[tuple[str, float]] = []
    for c, chapter in enumerate(book.pieces):
        for piece in chapter:
            pause = opts.pause(piece)
            if piece.pause == "end" and c < len(book.pieces) - 1:
                pause = opts.chapter_silence
            pieces.append((piece.text, pause / speed))
    silence = sum(seconds for _, seconds in pieces)
    if silence > MAX_SILENCE_SECONDS:
        # 12 kB of "Hi. " at speed 0.25 with 10 s pauses once asked for 33 hours of silence.
        raise errors.ConfigError(
            f"this request would add {silence / 3600:.1f} h of silence (limit {MAX_SILENCE_SECONDS / 3600:g} h): "
            "lower sentence_silence or raise speed"
        )
    first, pause = pieces[0]
    cut = split_long(first, FIRST_PIECE_CHARS) if first_cut else [first]
    if len(cut) > 1:
        clause = opts.sentence_silence / 2 / speed
        rest = split_long(" ".join(cut[1:]), SECOND_PIECE_CHARS)
        pieces[:1] = [(text, clause) for text in [cut[0], *rest[:-1]]] + [(rest[-1], pause)]
    synthesis = SynthesisConfig(
        speaker_id=speaker_id(spec, speaker),
        length_scale=config.length_scale / speed,
        noise_scale=config.noise_scale if noise_scale is None else noise_scale,
        noise_w_scale=config.noise_w if noise_w is None else noise_w,
        normalize_audio=False,  # one level for the whole answer: see the module docstring
    )
    return SpeechPlan(spec, synthesis, pieces)


class Pieces:
    """A request's pieces on the scheduler, in order, ``lookahead`` at a time."""

    def __init__(
        self, scheduler: Scheduler, arrival: int, plan: SpeechPlan, voice: Any, lookahead: int, first_step: int = 0
    ) -> None:
        self._submit = partial(scheduler.submit, arrival=arrival)
        self._first_step = first_step  # a later part of a streamed text: its first piece jumps no queue
        self._plan = plan
        self._voice = voice
        self._lookahead = lookahead
        self._next = 0
        self._queued: deque[concurrent.futures.Future[np.ndarray]] = deque()
        # The piece handed out last: its consumer may be gone (a client that left mid-await) while a
        # worker still speaks it with the leased voice; cancel() reports it so the lease outlives it.
        self._current: concurrent.futures.Future[np.ndarray] | None = None
        self._fill()

    def _fill(self) -> None:
        while len(self._queued) < self._lookahead and self._next < len(self._plan.pieces):
            job: Callable[[], np.ndarray] = partial(self._plan.render, self._voice, self._next)
            self._queued.append(self._submit(job, step=self._first_step + self._next))
            self._next += 1

    def pop(self) -> concurrent.futures.Future[np.ndarray] | None:
        """The next piece's future (None after the last), with the next one beyond the window submitted."""
        if not self._queued:
            return None
        future = self._current = self._queued.popleft()
        self._fill()
        return future

    def cancel(self) -> list[concurrent.futures.Future[np.ndarray]]:
        """Drop the pieces not started; returns those running (they cannot be stopped)."""
        handed = [self._current] if self._current is not None else []
        running = [f for f in [*handed, *self._queued] if not f.cancel() and not f.done()]
        self._queued.clear()
        self._next = len(self._plan.pieces)
        return running


class Speaking:
    """One request from admission to its last piece: the admission place, the lease, the pieces."""

    def __init__(self, state: ServerState, plan: SpeechPlan) -> None:
        self.state = state
        self.plan = plan
        self._stack = contextlib.AsyncExitStack()
        self._pieces: Pieces | None = None
        self._closed = False
        self._following: deque[SpeechPlan] = deque()
        self._arrival = 0
        self._voice: Any = None
        self._steps = 0

    async def open(self, keep_alive: float | None) -> None:
        """Admit, lease the voice, start the first pieces. ApiError 503 (+ Retry-After) when the queue
        is full; the manager's errors (a voice over the budget, unloadable) as they are."""
        scheduler = self.state.scheduler
        try:
            arrival = self._arrival = self._stack.enter_context(scheduler.admit(KIND))
        except Busy as exc:
            raise ApiError(503, str(exc), "server_busy", headers={"Retry-After": "1"}) from None
        try:
            voice = await self._stack.enter_async_context(self.state.leased(self.plan.spec, keep_alive))
            self._voice = voice
            self._pieces = Pieces(scheduler, arrival, self.plan, voice, scheduler.plan.workers + 1)
            self._steps = len(self.plan.pieces)
        except BaseException:
            await self.close()
            raise

    def then(self, plan: SpeechPlan) -> None:
        """Speak ``plan`` (the same voice and settings) after the pieces given so far, under the same
        admission and lease: the next part of a text that arrives in parts (Wyoming's streamed text)."""
        if plan.spec != self.plan.spec:
            raise ValueError(f"a stream speaks one voice: {self.plan.spec.name}, not {plan.spec.name}")
        self._following.append(plan)

    async def next(self) -> np.ndarray | None:
        """The next piece's audio, once spoken (None after the last given so far)."""
        future = self._pieces.pop() if self._pieces is not None else None
        if future is None and self._following and self._pieces is not None and not self._closed:
            plan = self._following.popleft()
            scheduler = self.state.scheduler
            self._pieces = Pieces(scheduler, self._arrival, plan, self._voice, scheduler.plan.workers + 1,
                                  first_step=self._steps)  # fmt: skip
            self._steps += len(plan.pieces)
            future = self._pieces.pop()
        if future is None:
            return None
        audio = await asyncio.wrap_future(future)
        self.state.record_audio(self.plan.spec.name, audio.size / self.plan.sample_rate)
        return audio

    async def close(self) -> None:
        """Cancel what is queued, wait for the pieces running (they use the voice), then give back
        the lease and the admission place. Idempotent; runs even in a cancelled task."""
        if self._closed:
            return
        self._closed = True
        running = self._pieces.cancel() if self._pieces is not None else []
        with anyio.CancelScope(shield=True):
            if running:
                await anyio.to_thread.run_sync(concurrent.futures.wait, running)
            await self._stack.aclose()


def choose_voice(state: ServerState, model: str | None, voice: str | None) -> tuple[ModelSpec, str | None]:
    """The Piper voice a request names, and the speaker its ``voice`` names when ``model`` is the voice.

    ``model`` names the voice unless it is one of OpenAI's model names; then ``voice`` does (OpenAI's
    voice names stand for the default voice, or an alias of ``model`` configured in ``server.aliases``).
    ModelNotFound (404, with close matches) for an unknown name."""
    aliases = state.server.aliases
    if model and (model not in OPENAI_TTS_MODELS or model in aliases):
        spec = state.resolve(model, KIND)
        plain = voice is None or voice == model or voice in OPENAI_VOICES or voice in aliases
        return spec, None if plain else voice
    if voice and not (voice in OPENAI_VOICES and voice not in aliases and model in aliases):
        return state.resolve(voice, KIND), None
    return state.resolve(model or OPENAI_TTS_MODELS[0], KIND), None


def speak_to_array(state: ServerState, voice: str, text: str, speed: float = 1.0) -> tuple[int, np.ndarray]:
    """``text`` spoken by ``voice`` (a Piper voice name or an OpenAI/alias name), blocking: (sample rate,
    float32 samples). Runs on the server's scheduler as one ``piper`` request: raises
    :class:`~voxmill.server.scheduler.Busy` when its queue is full, ModelNotFound for an unknown voice,
    ConfigError for a text it cannot speak, empty or over ``server.max_input_chars``."""
    limit = state.server.max_input_chars
    if not text.strip() or len(text) > limit:
        raise errors.ConfigError(f"text: {len(text)} characters; give 1 to {limit} (server.max_input_chars)")
    if not 0.25 <= speed <= 4.0:
        raise errors.ConfigError(f"speed {speed}: give 0.25 to 4.0")
    spec, _ = choose_voice(state, None, voice)
    plan = plan_speech(spec, text, speed)
    scheduler = state.scheduler
    parts = []
    with scheduler.admit(KIND) as arrival, state.manager.lease(spec) as model:
        pieces = Pieces(scheduler, arrival, plan, model, scheduler.plan.workers + 1)
        try:
            while (future := pieces.pop()) is not None:
                parts.append(future.result())
        finally:
            concurrent.futures.wait(pieces.cancel())
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    state.record_audio(spec.name, audio.size / plan.sample_rate)
    return plan.sample_rate, audio
