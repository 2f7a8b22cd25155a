"""The Wyoming protocol (Home Assistant, Rhasspy satellites) beside the HTTP API, over the same model
manager and scheduler: ``describe`` -> ``info``, ``synthesize`` (and the streamed
``synthesize-start/-chunk/-stop``) -> audio, ``transcribe`` + audio -> ``transcript``. This module holds
the service, the connection handler and speech; :mod:`voxmill.server.wyoming_asr` the transcription.

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
from functools import partial
from typing import Any

import anyio

from voxmill import errors
from voxmill.models import ModelSpec
from voxmill.server.problems import ApiError
from voxmill.server.scheduler import Busy
from voxmill.server.speaking import KIND, Speaking, choose_voice
from voxmill.server.state import ServerState
from voxmill.server.wyoming_asr import Listening, can_transcribe
from voxmill.server.wyoming_events import Code, WyomingError, build_info, read_event
from voxmill.server.wyoming_speech import AudioOut, TextStream, encode_events, plan_part
from voxmill.synth.voice import speaker_id

try:
    from wyoming.asr import Transcript
    from wyoming.error import Error
    from wyoming.event import Event
    from wyoming.info import Info
    from wyoming.ping import Pong
    from wyoming.server import AsyncEventHandler, AsyncServer
except ImportError:  # pragma: no cover - the server extra brings it
    raise errors.MissingExtraError("wyoming", "server") from None

__all__ = ["WyomingHandler", "WyomingService", "start_wyoming"]

log = logging.getLogger("voxmill.server")

IDLE_TIMEOUT_S = 300.0  # a connection that sends nothing for this long is closed
SEND_TIMEOUT_S = 60.0  # as the HTTP speech route: a client that takes nothing in is dropped


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
    info = build_info(piper, whisper if can_transcribe() else [], __version__)
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
        self._stream: TextStream | None = None
        self._listening: Listening | None = None
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
        await self.write_bytes(encode_events([event]))

    async def write_bytes(self, data: bytes) -> None:
        """Events already encoded (:func:`encode_events`), sent; a client that takes nothing in for
        ``SEND_TIMEOUT_S`` is dropped."""
        if self.writer.is_closing():
            raise ConnectionResetError("the client is gone")
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), SEND_TIMEOUT_S)

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
            self._stream = TextStream(self, spec, speaker)
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
        if isinstance(speaker, str) and len(speaker) > 300:  # no voice has such a name; not echoed back whole
            raise WyomingError(Code.UNKNOWN_SPEAKER, f"voice.speaker: {len(speaker)} characters; at most 300")
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
        plan = await plan_part(spec, text, speaker, True)
        speaking = Speaking(self.state, plan)
        try:
            await speaking.open(None)
            out = AudioOut(self, plan.sample_rate)
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
            self._listening = self._listening_for(event.data if event.type == "transcribe" else {})
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

    def _listening_for(self, data: dict[str, Any]) -> Listening:
        """A ``transcribe`` request for the model its ``name`` names (else the default) in its ``language``."""
        name = _optional_str(data, "name", 300)
        try:
            spec = self.state.resolve(name or self.state.server.default_asr, "whisper")
        except errors.ModelNotFound as exc:
            raise WyomingError(Code.UNKNOWN_MODEL, str(exc)) from None
        return Listening(self.state, spec, _optional_str(data, "language", 40))


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
