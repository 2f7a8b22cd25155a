"""``POST /v1/audio/speech``: OpenAI's speech endpoint, spoken by Piper voices, streamed as it is made.

The text is planned and spoken in pieces by server/speaking.py (the first piece short, so the first
audio leaves within a few tenths of a second; a new request's first piece overtakes older requests'
later ones on the scheduler). Each piece is encoded (server/encode.py) and sent as soon as it is spoken.

The admission place and the voice's lease are held until the stream ends, not until the route returns
(the body is sent after that): they are taken before the response is made, so that a full queue is a
real 503 and a load failure a real status, and given back when the response ends, however it ends. A
client that goes away cancels its queued pieces; one that stops reading is dropped after
``SEND_TIMEOUT_S``. An error after the first bytes cannot change the status: the transfer is cut there
(no last chunk, so the client cannot take the audio for complete; an ``error`` event for ``sse``) and
the server logs why.

Level: the voice's own, unnormalized and clipped to [-1, 1] (Piper's raw output is about -24 LUFS
with peaks near -7 dBFS): no gain per sentence, whose jumps in volume are worse than a quiet voice.

Batching the pieces of concurrent requests into one model call was measured and is not done: two
80-character sentences through the plain VITS graph took 948 ms as one batch of two on one thread,
484 ms as two parallel calls of one thread each (451 ms with the split runner the server uses) on
this 2-core machine: the padded batch does the work of the longest twice and gains no parallelism.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from functools import partial
from typing import Annotated, Any, Literal

import anyio
import anyio.lowlevel
import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator
from starlette.types import Message, Receive, Scope, Send

from voxmill import errors
from voxmill.models import ModelSpec
from voxmill.server.auth import require_api
from voxmill.server.encode import Encoder, encoder_for
from voxmill.server.problems import ApiError
from voxmill.server.speaking import Speaking, choose_voice, plan_speech
from voxmill.server.state import ServerState, parse_keep_alive
from voxmill.synth.voice import speaker_id, voice_config

__all__ = ["SpeechRequest", "router"]

log = logging.getLogger("voxmill.server")
router = APIRouter(tags=["audio"], dependencies=[Depends(require_api)])

# nginx's send_timeout: a client that takes in nothing for this long is dropped, so that one that stops
# reading (its socket still open) cannot hold an admission place and a voice lease for ever.
SEND_TIMEOUT_S = 60.0
# The body goes out in parts of this size, so the timeout measures the client's progress, not a whole piece
# (a 20-s piece is ~1 MB of pcm: minutes on a slow link that is still reading).
SEND_PART_BYTES = 64 * 1024


# strict: "2" and true are not numbers; NaN and infinities are refused too.
Speed = Annotated[float, Field(strict=True, ge=0.25, le=4.0, allow_inf_nan=False)]
Scale = Annotated[float, Field(strict=True, ge=0.0, le=5.0, allow_inf_nan=False)]
Seconds = Annotated[float, Field(strict=True, ge=0.0, le=10.0, allow_inf_nan=False)]
Duration = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Name = Annotated[StrictStr, Field(max_length=300)]


class SpeechRequest(BaseModel):
    """OpenAI's speech request, plus Piper's ``noise_scale``, ``noise_w``, ``sentence_silence``,
    ``speaker`` and Ollama's ``keep_alive``. ``instructions`` is accepted and ignored (Piper has no
    style prompt); unknown fields are ignored, as clients send fields of newer API versions."""

    model_config = ConfigDict(extra="ignore")

    input: StrictStr
    model: Name | None = None
    voice: Name | None = None
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: Speed = 1.0
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: StrictStr | None = None
    noise_scale: Scale | None = None
    noise_w: Scale | None = None
    sentence_silence: Seconds | None = None
    """Seconds after each sentence at speed 1 (half of it inside a sentence cut for length)."""
    speaker: StrictInt | Name | None = None
    keep_alive: StrictInt | Duration | Annotated[StrictStr, Field(max_length=40)] | None = None

    @field_validator("*", mode="after")
    @classmethod
    def _unicode(cls, value: Any) -> Any:
        # JSON can carry lone surrogates ("\ud800"), which no text tool or UTF-8 response can take.
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"not valid Unicode (a lone surrogate at character {exc.start})") from None
        return value


class _StreamCut(Exception):
    """The audio cannot go on after its first bytes (already logged): the response ends without its last
    chunk, so the client sees a cut transfer, not a shorter file that looks complete."""


class _SpeechResponse(StreamingResponse):
    """A streamed answer that gives its request's resources back however the stream ends, even when
    its body never started (a client gone before the first byte) or its client stopped reading."""

    def __init__(self, speaking: Speaking, encoder: Encoder, content: AsyncIterator[bytes], media_type: str) -> None:
        super().__init__(content, media_type=media_type, headers={"Cache-Control": "no-store"})
        self._speaking = speaking
        self._encoder = encoder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_in_parts(message: Message) -> None:
            body = message.get("body", b"")
            if message["type"] != "http.response.body" or len(body) <= SEND_PART_BYTES:
                await _send_within(send, message)
                return
            more = bool(message.get("more_body", False))
            for start in range(0, len(body), SEND_PART_BYTES):
                last = start + SEND_PART_BYTES >= len(body)
                part = {"type": "http.response.body", "body": body[start : start + SEND_PART_BYTES],
                        "more_body": more or not last}  # fmt: skip
                await _send_within(send, part)
                # uvicorn's send does not wait while the socket takes data: let a lost connection be noticed
                # before the next part (asyncio logs every write to a socket already reset).
                await anyio.lowlevel.checkpoint()

        try:
            await super().__call__(scope, receive, send_in_parts)
        except _Stalled:
            log.warning("speech stream for %s: the client took nothing in %g s; dropped", self._speaking.plan.spec.name,
                        SEND_TIMEOUT_S)  # fmt: skip
        except _StreamCut:
            pass  # logged where it happened; uvicorn closes the connection of an unfinished response
        finally:
            with anyio.CancelScope(shield=True):
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()  # a stream left at a ``yield`` stops now, not at garbage collection
                self._encoder.close()  # also when the body never started
                await self._speaking.close()


class _Stalled(Exception):
    """A part of the body was not taken by the client within :data:`SEND_TIMEOUT_S`."""


async def _send_within(send: Send, message: Message) -> None:
    try:
        with anyio.fail_after(SEND_TIMEOUT_S):
            await send(message)
    except TimeoutError:
        raise _Stalled from None


async def _encoded(speaking: Speaking, encoder: Encoder, first: np.ndarray | None) -> AsyncGenerator[bytes, None]:
    """Each piece's bytes as soon as it is spoken and encoded (encoding runs off the event loop)."""
    try:
        audio = first
        while audio is not None:
            data = await anyio.to_thread.run_sync(encoder.feed, audio)
            if data:
                yield data
            audio = await speaking.next()
        tail = await anyio.to_thread.run_sync(encoder.finish)
        if tail:
            yield tail
    finally:
        encoder.close()
        await speaking.close()


async def _audio(speaking: Speaking, encoder: Encoder, first: np.ndarray | None) -> AsyncIterator[bytes]:
    try:
        async with contextlib.aclosing(_encoded(speaking, encoder, first)) as chunks:
            async for data in chunks:
                yield data
    except Exception as exc:  # the status is sent: cut the audio here, say why in the log
        log.error("speech stream for %s ended early: %s", speaking.plan.spec.name, exc)
        raise _StreamCut from None


async def _events(speaking: Speaking, encoder: Encoder, first: np.ndarray | None, chars: int) -> AsyncIterator[bytes]:
    """OpenAI's server-sent events: ``speech.audio.delta`` (base64 audio), then ``speech.audio.done``."""

    def event(data: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(data)}\n\n".encode()

    try:
        async with contextlib.aclosing(_encoded(speaking, encoder, first)) as chunks:
            async for data in chunks:
                yield event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})
    except Exception as exc:
        log.error("speech stream for %s ended early: %s", speaking.plan.spec.name, exc)
        yield event({"type": "error", "error": {"message": "speech failed (logged on the server)",
                                                "type": "server_error", "code": "internal"}})  # fmt: skip
        return
    # Piper reads characters, not tokens: usage counts the input's characters.
    usage = {"input_tokens": chars, "output_tokens": 0, "total_tokens": chars}
    yield event({"type": "speech.audio.done", "usage": usage, "audio_seconds": round(encoder.seconds, 3)})


# ---- the route ---------------------------------------------------------------------------------------


def _speaker(spec: ModelSpec, body: SpeechRequest, from_voice: str | None) -> int | None:
    """The speaker id: ``speaker`` (400 if the voice has no such speaker), else the speaker that ``voice``
    names when ``model`` is the voice (404: not a speaker of it), else the voice's default."""
    name = body.speaker if body.speaker is not None else from_voice
    try:
        return speaker_id(spec, name)
    except errors.ConfigError:
        speakers = ", ".join(sorted(voice_config(spec).speaker_id_map)) or "none (a single-speaker voice)"
        count = max(1, voice_config(spec).num_speakers)
        field, status = ("speaker", 400) if body.speaker is not None else ("voice", 404)
        raise ApiError(status, f"{field} {str(name)[:80]!r}: not a speaker of {spec.name} (ids 0..{count - 1}; "
                       f"names: {speakers[:500]})", "unknown_speaker", field) from None  # fmt: skip


def _check_input(text: str, limit: int) -> None:
    if not text.strip():
        raise ApiError(400, "input: empty; give the text to speak", "invalid_request", "input")
    if len(text) > limit:
        raise ApiError(400, f"input: {len(text)} characters, over the limit of {limit} (server.max_input_chars)",
                       "input_too_long", "input")  # fmt: skip


@router.post("/v1/audio/speech", response_model=None)
async def speech(body: SpeechRequest, request: Request) -> _SpeechResponse:
    state: ServerState = request.app.state.voxmill
    _check_input(body.input, state.server.max_input_chars)
    spec, from_voice = choose_voice(state, body.model, body.voice)
    request.state.model = spec.name
    keep_alive = parse_keep_alive(body.keep_alive)
    speaker = _speaker(spec, body, from_voice)
    try:
        plan = await anyio.to_thread.run_sync(
            partial(plan_speech, spec, body.input, speed=body.speed, noise_scale=body.noise_scale,
                    noise_w=body.noise_w, sentence_silence=body.sentence_silence, speaker=speaker)
        )  # fmt: skip
    except errors.ConfigError as exc:  # nothing to say, or only letters the voice cannot read
        raise ApiError(400, f"input: {exc}", "invalid_input", "input") from None
    speaking = Speaking(state, plan)
    await speaking.open(keep_alive)
    try:
        encoder = encoder_for(body.response_format, plan.sample_rate)  # while the first piece is spoken
        # Waiting for the first piece here makes its failure a real status; the first byte could not
        # leave before it anyway.
        first = await speaking.next()
    except BaseException:
        await speaking.close()
        raise
    if body.stream_format == "sse":
        return _SpeechResponse(speaking, encoder, _events(speaking, encoder, first, len(body.input)),
                               "text/event-stream")  # fmt: skip
    return _SpeechResponse(speaking, encoder, _audio(speaking, encoder, first), encoder.content_type)
