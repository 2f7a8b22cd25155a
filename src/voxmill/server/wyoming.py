"""The Wyoming protocol (Home Assistant, Rhasspy satellites) beside the HTTP API, over the same model
manager and scheduler: ``describe`` -> ``info``, ``synthesize`` (and the streamed
``synthesize-start/-chunk/-stop``) -> audio, ``transcribe`` + audio -> ``transcript``.

Unlike wyoming-piper (one voice resident behind one lock, synthesis on the event loop), each request is
admitted like an HTTP one (``max_queue`` per kind), leases its voice from the manager (several voices
and several clients at once, within the budget) and runs on the scheduler's workers, piece by piece:
the first audio chunk leaves once the first short piece is spoken, not the whole first sentence.

A request that cannot be served gets an ``error`` event and its connection is closed: Home Assistant's
readers skip ``error`` events and wait for audio or a transcript without a timeout, so only the close
ends their wait. Events the server does not know are ignored, as the protocol asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import numpy as np

from voxmill import errors
from voxmill.models import ModelSpec
from voxmill.server.problems import ApiError
from voxmill.server.scheduler import Busy
from voxmill.server.speaking import KIND, Speaking, choose_voice, plan_speech
from voxmill.server.state import ServerState
from voxmill.server.wyoming_events import Code, WyomingError, build_info, read_event
from voxmill.synth.options import SynthOptions
from voxmill.synth.voice import speaker_id, voice_config
from voxmill.text.split import sentences, split_long

try:
    from wyoming.asr import Transcript
    from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
    from wyoming.error import Error
    from wyoming.event import Event, async_write_event
    from wyoming.info import Info
    from wyoming.ping import Pong
    from wyoming.server import AsyncEventHandler, AsyncServer
    from wyoming.tts import SynthesizeStopped
except ImportError:  # pragma: no cover - the server extra brings it
    raise errors.MissingExtraError("wyoming", "server") from None

__all__ = ["WyomingHandler", "WyomingService", "start_wyoming"]

log = logging.getLogger("voxmill.server")

SAMPLES_PER_CHUNK = 1024  # wyoming-piper's default: 46 ms at 22050 Hz
CHUNK_BYTES = SAMPLES_PER_CHUNK * 2
IDLE_TIMEOUT_S = 300.0  # a connection that sends nothing for this long is closed
SEND_TIMEOUT_S = 60.0  # as the HTTP speech route: a client that takes nothing in is dropped
MAX_ASR_SECONDS = 300.0
CLIP_SECONDS = 28.0  # transcribe_clip's one-window limit
PENDING_CHARS = 600  # a streamed text with no sentence end this long is cut anyway (bounds each split)
ASR_RATE = 16000


# ---- the service ---------------------------------------------------------------------------------


class WyomingService:
    """A running Wyoming listener; ``address`` is where it listens (the bound port for ``tcp://H:0``)."""

    def __init__(self, server: Any, address: str, handlers: set[WyomingHandler]) -> None:
        self._server = server
        self.address = address
        self._handlers = handlers

    async def stop(self, timeout: float) -> None:
        """Stop listening, close every connection and wait (up to ``timeout``) for their requests to give
        their leases and places back: the scheduler closes after this."""
        handlers = list(self._handlers)
        await self._server.stop()
        waits = [asyncio.ensure_future(h.finished.wait()) for h in handlers]
        if waits:
            _, pending = await asyncio.wait(waits, timeout=max(0.1, timeout))
            for wait in pending:
                wait.cancel()


async def start_wyoming(state: ServerState, uri: str) -> WyomingService:
    """Listen at ``uri`` (``tcp://HOST:PORT`` or ``unix:///PATH``); ConfigError when it cannot.

    The ``describe`` answer is built first, off the event loop: Home Assistant gives it one second."""
    from voxmill import __version__

    registry = state.manager.registry
    piper, whisper = await anyio.to_thread.run_sync(lambda: (registry.all("piper"), registry.all("whisper")))
    info = build_info(piper, whisper if _has_faster_whisper() else [], __version__)
    handlers: set[WyomingHandler] = set()
    server = AsyncServer.from_uri(uri)
    try:
        await server.start(partial(WyomingHandler, state, info, handlers))
    except OSError as exc:
        raise errors.ConfigError(f"wyoming {uri}: cannot listen: {exc.strerror or exc}") from None
    sockets = getattr(getattr(server, "_server", None), "sockets", None) or []
    address = uri
    if uri.startswith("tcp://") and sockets:
        host, port = sockets[0].getsockname()[:2]
        address = f"tcp://{f'[{host}]' if ':' in host else host}:{port}"
    log.info("wyoming: listening at %s", address)
    return WyomingService(server, address, handlers)


def _has_faster_whisper() -> bool:
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return False
    return True


# ---- one connection ------------------------------------------------------------------------------


class WyomingHandler(AsyncEventHandler):
    """One client's connection: reads events with bounds, serves one request at a time (a streamed
    text is spoken while more of it arrives)."""

    def __init__(self, state: ServerState, info: Info, handlers: set[WyomingHandler], *args: Any) -> None:
        super().__init__(*args)
        self.state = state
        self.info = info
        self.finished = asyncio.Event()
        self._handlers = handlers
        self._stream: _TextStream | None = None
        self._listening: _Listening | None = None
        self._failed = False
        handlers.add(self)

    async def run(self) -> None:
        try:
            while not self._failed:
                try:
                    event = await asyncio.wait_for(read_event(self.reader), IDLE_TIMEOUT_S)
                    if event is None or not await self.handle_event(event):
                        break
                except Exception as exc:
                    await self.fail(exc)
                    break
        finally:
            with anyio.CancelScope(shield=True):
                await self.disconnect()
                self.writer.close()
                self._handlers.discard(self)
                self.finished.set()

    async def disconnect(self) -> None:
        if self._stream is not None:
            await self._stream.cancel()
            self._stream = None

    async def write_event(self, event: Event) -> None:
        if self.writer.is_closing():
            raise ConnectionResetError("the client is gone")
        await asyncio.wait_for(async_write_event(event, self.writer), SEND_TIMEOUT_S)

    async def fail(self, exc: BaseException) -> None:
        """Tell the client why (when it is the request's fault or the server's, not a lost connection),
        then close the connection."""
        self._failed = True
        failure = _as_failure(exc)
        if failure is not None:
            with contextlib.suppress(Exception):  # the connection is closing anyway
                await self.write_event(Error(text=failure.message, code=failure.code.value).event())
        self.writer.close()
        self.reader.feed_eof()

    async def handle_event(self, event: Event) -> bool:
        kind, data = event.type, event.data
        if kind == "describe":
            await self.write_event(self.info.event())
        elif kind == "ping":
            await self.write_event(Pong(text=_optional_str(data, "text") or "").event())
        elif kind == "synthesize":
            if self._stream is None:  # inside a stream it repeats the streamed text: ignored
                await self._synthesize(data)
        elif kind == "synthesize-start":
            if self._stream is not None:
                raise WyomingError(Code.BAD_REQUEST, "synthesize-start: a stream is already open")
            spec, speaker = self._voice(data.get("voice"))
            self._stream = _TextStream(self, spec, speaker)
        elif kind == "synthesize-chunk":
            if self._stream is None:
                raise WyomingError(Code.BAD_REQUEST, "synthesize-chunk before synthesize-start")
            self._stream.add(_optional_str(data, "text", self.state.server.max_input_chars) or "")
        elif kind == "synthesize-stop":
            if self._stream is not None:
                stream, self._stream = self._stream, None
                return await stream.finish()
        elif kind in ("transcribe", "audio-start", "audio-chunk", "audio-stop"):
            return await self._listen(event)
        return True  # unknown events (select-program, newer ones) are ignored, as the protocol asks

    # ---- speech -----------------------------------------------------------------------------------

    def _voice(self, voice: Any) -> tuple[ModelSpec, int | None]:
        """The voice and speaker a ``voice`` object names (name, else language, else the default voice)."""
        if voice is not None and not isinstance(voice, dict):
            raise WyomingError(Code.BAD_REQUEST, "voice: expected an object with name, language, speaker")
        voice = voice or {}
        name, language = _optional_str(voice, "name", 300), _optional_str(voice, "language", 40)
        speaker = voice.get("speaker")
        if speaker is not None and (not isinstance(speaker, (str, int)) or isinstance(speaker, bool)):
            raise WyomingError(Code.UNKNOWN_SPEAKER, "voice.speaker: expected a name or an id")
        try:
            if name:
                spec, _ = choose_voice(self.state, name, None)
            else:
                spec = self._voice_for(language) if language else choose_voice(self.state, None, None)[0]
        except errors.ModelNotFound as exc:
            raise WyomingError(Code.UNKNOWN_VOICE, str(exc)) from None
        try:
            return spec, speaker_id(spec, speaker if speaker != "" else None)
        except errors.ConfigError as exc:
            raise WyomingError(Code.UNKNOWN_SPEAKER, str(exc).removeprefix("--")) from None

    def _voice_for(self, language: str) -> ModelSpec:
        default = choose_voice(self.state, None, None)[0]
        wanted = language.replace("-", "_").lower()
        voices = [default, *self.state.manager.registry.all(KIND)]
        for match in (lambda code: code == wanted, lambda code: code.split("_")[0] == wanted.split("_")[0]):
            for spec in voices:
                if match(((spec.voice.locale if spec.voice else None) or spec.language or "").lower()):
                    return spec
        raise WyomingError(Code.UNKNOWN_VOICE, f"no voice speaks {language!r}")

    async def _synthesize(self, data: dict[str, Any]) -> None:
        text = _speech_text(data.get("text"), self.state.server.max_input_chars)
        spec, speaker = self._voice(data.get("voice"))
        plan = await _plan(spec, text, speaker, True)
        speaking = Speaking(self.state, plan)
        try:
            await speaking.open(None)
            out = _AudioOut(self, plan.sample_rate)
            while (audio := await speaking.next()) is not None:
                await out.send(audio)
            # Given back before the last event: a client's next request, sent on audio-stop, finds its place.
            await speaking.close()
            await out.finish(always=True)
        finally:
            await speaking.close()

    # ---- transcription ----------------------------------------------------------------------------

    async def _listen(self, event: Event) -> bool:
        if self._listening is None or event.type == "transcribe":
            self._listening = _Listening(self.state, event.data if event.type == "transcribe" else {})
            if event.type == "transcribe":
                return True
        listening = self._listening
        if event.type == "audio-start":
            listening.start(event.data)
        elif event.type == "audio-chunk":
            listening.add(event.data, event.payload or b"")
        else:
            self._listening = None
            text, language = await listening.transcribe()
            await self.write_event(Transcript(text=text, language=language).event())
        return True


class _AudioOut:
    """Float pieces out as 16-bit mono ``audio-chunk`` events of 1024 samples, between one ``audio-start``
    and one ``audio-stop`` (Home Assistant's reader stops at the first ``audio-stop``)."""

    def __init__(self, handler: WyomingHandler, rate: int) -> None:
        self._handler = handler
        self.rate = rate
        self.started = False
        self._rest = b""

    async def send(self, audio: np.ndarray) -> None:
        write = self._handler.write_event
        if not self.started:
            self.started = True
            await write(AudioStart(rate=self.rate, width=2, channels=1).event())
        data = self._rest + (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        whole = len(data) - len(data) % CHUNK_BYTES
        for start in range(0, whole, CHUNK_BYTES):
            await write(
                AudioChunk(rate=self.rate, width=2, channels=1, audio=data[start : start + CHUNK_BYTES]).event()
            )
        self._rest = data[whole:]

    async def finish(self, always: bool) -> None:
        if not self.started and not always:
            return
        await self.send(np.zeros(0, np.float32))
        if self._rest:
            await self._handler.write_event(AudioChunk(rate=self.rate, width=2, channels=1, audio=self._rest).event())
        await self._handler.write_event(AudioStop().event())


class _TextStream:
    """A text that arrives in parts (``synthesize-chunk``): each finished sentence is spoken while the
    rest arrives, all under one admission and one lease; the audio is one ``audio-start`` .. ``audio-stop``,
    then ``synthesize-stopped``."""

    def __init__(self, handler: WyomingHandler, spec: ModelSpec, speaker: int | None) -> None:
        self._handler = handler
        self._spec = spec
        self._speaker = speaker
        self._language = voice_config(spec).language or "en"
        self._pending = ""
        self._total = 0
        self._parts: asyncio.Queue[tuple[str, bool] | None] = asyncio.Queue()
        self._failed = False
        self._task = asyncio.create_task(self._speak(), name="voxmill wyoming stream")

    def add(self, text: str) -> None:
        limit = self._handler.state.server.max_input_chars
        self._total += len(text)
        if self._total > limit:
            raise WyomingError(Code.BAD_REQUEST, f"streamed text: over {limit} characters (server.max_input_chars)")
        self._pending += text
        found = sentences(self._pending, self._language) if self._pending.strip() else []
        if len(found) > 1:
            cut = self._pending.rfind(found[-1])
            if cut > 0:
                self._send(self._pending[:cut])
                self._pending = self._pending[cut:]
        if len(self._pending) > PENDING_CHARS:  # no sentence end in sight: speak what is there
            pieces = split_long(self._pending, PENDING_CHARS // 2)
            self._send(" ".join(pieces[:-1]))
            self._pending = pieces[-1]

    def _send(self, text: str) -> None:
        if text.strip():
            self._parts.put_nowait((text, False))

    async def finish(self) -> bool:
        """Speak the rest; False when the stream failed (the client was told, the connection closes)."""
        if self._pending.strip():
            self._parts.put_nowait((self._pending, True))
        self._parts.put_nowait(None)
        await asyncio.shield(self._task)
        return not self._failed

    async def cancel(self) -> None:
        self._task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.gather(self._task, return_exceptions=True)

    async def _speak(self) -> None:
        handler = self._handler
        speaking: Speaking | None = None
        pause = SynthOptions().sentence_silence
        try:
            out: _AudioOut | None = None
            while (part := await self._parts.get()) is not None:
                text, last = part
                plan = await _plan(self._spec, text, self._speaker, speaking is None)
                if not last:  # a sentence that more text follows: its pause after it
                    plan.pieces[-1] = (plan.pieces[-1][0], pause)
                if speaking is None:
                    speaking = Speaking(handler.state, plan)
                    await speaking.open(None)
                    out = _AudioOut(handler, plan.sample_rate)
                else:
                    speaking.then(plan)
                while (audio := await speaking.next()) is not None:
                    await out.send(audio)  # type: ignore[union-attr]
            if speaking is not None:
                await speaking.close()
            if out is not None:
                await out.finish(always=False)
            await handler.write_event(SynthesizeStopped().event())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed = True
            await handler.fail(exc)
        finally:
            if speaking is not None:
                await speaking.close()


class _Listening:
    """One ``transcribe`` request: its model and language, then the audio in 16-bit mono at its own rate."""

    def __init__(self, state: ServerState, data: dict[str, Any]) -> None:
        self.state = state
        name = _optional_str(data, "name", 300)
        try:
            self.spec = state.resolve(name or state.server.default_asr, "whisper")
        except errors.ModelNotFound as exc:
            raise WyomingError(Code.UNKNOWN_MODEL, str(exc)) from None
        language = _optional_str(data, "language", 40)
        self.language = language.replace("_", "-").split("-")[0].lower() if language else None
        if self.language and self.spec.language and self.language != self.spec.language:
            raise WyomingError(Code.BAD_REQUEST, f"language {language!r}: {self.spec.name} only transcribes "
                               f"{self.spec.language!r}")  # fmt: skip
        self.rate: int | None = None
        self._audio = bytearray()
        self._converter: Any = None

    def start(self, data: dict[str, Any]) -> None:
        self.rate, _, _ = _audio_format(data)
        self._audio.clear()
        self._converter = AudioChunkConverter(rate=self.rate, width=2, channels=1)

    def add(self, data: dict[str, Any], payload: bytes) -> None:
        rate, width, channels = _audio_format(data)
        if self.rate is None:  # no audio-start: the first chunk says the format
            self.start(data)
        if rate != self.rate:
            raise WyomingError(Code.BAD_AUDIO_FORMAT, f"audio-chunk: rate {rate} after audio-start's {self.rate}")
        if len(payload) % (width * channels):
            raise WyomingError(Code.BAD_AUDIO_FORMAT, f"audio-chunk: {len(payload)} bytes is not whole frames of "
                               f"{width * channels} bytes")  # fmt: skip
        chunk = AudioChunk(rate=rate, width=width, channels=channels, audio=payload)
        self._audio += self._converter.convert(chunk).audio
        if len(self._audio) > rate * 2 * MAX_ASR_SECONDS:
            raise WyomingError(Code.AUDIO_TOO_LONG, f"audio: over the limit of {MAX_ASR_SECONDS:g} s")

    async def transcribe(self) -> tuple[str, str | None]:
        """The text of the audio received (admitted, resampled and decoded on the scheduler)."""
        from voxmill.server.transcription import _on_scheduler

        language = self.language or self.spec.language
        if not self._audio or self.rate is None:
            return "", language
        pcm, rate, spec = bytes(self._audio), self.rate, self.spec
        self._audio = bytearray()
        state = self.state
        with state.scheduler.admit("whisper") as arrival:
            samples = await _on_scheduler(state, arrival, partial(_to_16k, pcm, rate))
            async with state.leased(spec) as model:
                text = await _on_scheduler(state, arrival, partial(_decode, model, samples, self.language))
        state.record_audio(spec.name, samples.size / ASR_RATE)
        return text, language


def _to_16k(pcm: bytes, rate: int) -> np.ndarray:
    from voxmill.audio.resample import resample

    samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32768.0
    return resample(samples, rate, ASR_RATE)


def _decode(model: Any, samples: np.ndarray, language: str | None) -> str:
    from voxmill.models.asr import AsrOptions, transcribe, transcribe_clip

    options = AsrOptions(language=language)
    if samples.size <= CLIP_SECONDS * ASR_RATE:
        return transcribe_clip(model, samples, options)
    return transcribe(model, samples, options).text


# ---- checks ---------------------------------------------------------------------------------------


async def _plan(spec: ModelSpec, text: str, speaker: int | None, first_cut: bool) -> Any:
    job: Callable[[], Any] = partial(plan_speech, spec, text, speaker=speaker, first_cut=first_cut)
    try:
        return await anyio.to_thread.run_sync(job)
    except errors.ConfigError as exc:
        raise WyomingError(Code.BAD_REQUEST, f"text: {exc}") from None


def _optional_str(data: dict[str, Any], key: str, limit: int = 1000) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise WyomingError(Code.BAD_REQUEST, f"{key}: expected text of at most {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON's "\ud800"
        raise WyomingError(Code.BAD_REQUEST, f"{key}: not valid Unicode") from None
    return value


def _speech_text(value: Any, limit: int) -> str:
    text = _optional_str({"text": value}, "text", limit) if value is not None else None
    if not text or not text.strip():
        raise WyomingError(Code.BAD_REQUEST, f"text: give 1 to {limit} characters to speak")
    return text


def _audio_format(data: dict[str, Any]) -> tuple[int, int, int]:
    values = [data.get(key) for key in ("rate", "width", "channels")]
    rate, width, channels = (v if isinstance(v, int) and not isinstance(v, bool) else -1 for v in values)
    if not (8000 <= rate <= 192_000 and 1 <= width <= 4 and 1 <= channels <= 8):
        raise WyomingError(Code.BAD_AUDIO_FORMAT, f"audio format rate={values[0]!r} width={values[1]!r} "
                           f"channels={values[2]!r}: expected 8000-192000 Hz, 1-4 bytes, 1-8 channels")  # fmt: skip
    return rate, width, channels


def _as_failure(exc: BaseException) -> WyomingError | None:
    """What to tell the client about ``exc``; None when the connection itself is gone or stalled."""
    if isinstance(exc, WyomingError):
        return exc
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.IncompleteReadError)):
        return None
    if isinstance(exc, Busy):
        return WyomingError(Code.SERVER_BUSY, str(exc))
    if isinstance(exc, ApiError):
        return WyomingError(Code.SERVER_BUSY if exc.status == 503 else Code.BAD_REQUEST, exc.message)
    if isinstance(exc, errors.ModelNotFound):
        return WyomingError(Code.UNKNOWN_MODEL, str(exc))
    if isinstance(exc, errors.ModelError):
        return WyomingError(Code.MODEL_UNAVAILABLE, str(exc))
    if isinstance(exc, errors.ConfigError):
        return WyomingError(Code.BAD_REQUEST, str(exc))
    if isinstance(exc, errors.AudioError):
        return WyomingError(Code.BAD_AUDIO_FORMAT, str(exc))
    log.error("wyoming request failed", exc_info=exc)
    return WyomingError(Code.INTERNAL, "the request failed (logged on the server)")
