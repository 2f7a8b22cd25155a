"""Speech out on a Wyoming connection: float pieces as 16-bit ``audio-chunk`` events (a piece's events in
one write), and a text that arrives in parts (``synthesize-chunk``) spoken sentence by sentence while the
rest arrives. The connection itself (reading, errors, the plain ``synthesize``) is :mod:`.wyoming`."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import anyio
import numpy as np

from voxmill import errors
from voxmill.models import ModelSpec
from voxmill.server.speaking import Speaking, plan_speech
from voxmill.server.state import ServerState
from voxmill.server.wyoming_events import Code, WyomingError
from voxmill.synth.options import SynthOptions
from voxmill.synth.voice import voice_config
from voxmill.text.split import sentences, split_long

try:
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.event import Event, write_event
    from wyoming.tts import SynthesizeStopped
except ImportError:  # pragma: no cover - the server extra brings it
    raise errors.MissingExtraError("wyoming", "server") from None

__all__ = ["AudioOut", "Connection", "TextStream", "encode_events", "plan_part"]

SAMPLES_PER_CHUNK = 1024  # wyoming-piper's default: 46 ms at 22050 Hz
CHUNK_BYTES = SAMPLES_PER_CHUNK * 2
PENDING_CHARS = 600  # a streamed text with no sentence end this long is cut anyway (bounds each split)


class Connection(Protocol):
    """What speech needs of a connection (:class:`~voxmill.server.wyoming.WyomingHandler`)."""

    state: ServerState

    async def write_event(self, event: Event) -> None: ...

    async def write_bytes(self, data: bytes) -> None: ...

    async def fail(self, exc: BaseException) -> None: ...


def encode_events(events: list[Event]) -> bytes:
    """``events`` as the protocol writes them, one after the other (wyoming's own encoder)."""
    buffer = io.BytesIO()
    for event in events:
        write_event(event, buffer)
    return buffer.getvalue()


class AudioOut:
    """Float pieces out as 16-bit mono ``audio-chunk`` events of 1024 samples, between one ``audio-start``
    and one ``audio-stop`` (Home Assistant's reader stops at the first ``audio-stop``)."""

    def __init__(self, handler: Connection, rate: int) -> None:
        self._handler = handler
        self.rate = rate
        self.started = False
        self._rest = b""

    async def send(self, audio: np.ndarray) -> None:
        events = []
        if not self.started:
            self.started = True
            events.append(AudioStart(rate=self.rate, width=2, channels=1).event())
        data = self._rest + (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        whole = len(data) - len(data) % CHUNK_BYTES
        events += [
            AudioChunk(rate=self.rate, width=2, channels=1, audio=data[start : start + CHUNK_BYTES]).event()
            for start in range(0, whole, CHUNK_BYTES)
        ]
        self._rest = data[whole:]
        # One write per piece, not one per 46-ms chunk: the event loop shares two cores with the voices.
        await self._handler.write_bytes(encode_events(events))

    async def finish(self, always: bool) -> None:
        if not self.started and not always:
            return
        await self.send(np.zeros(0, np.float32))
        if self._rest:
            await self._handler.write_event(AudioChunk(rate=self.rate, width=2, channels=1, audio=self._rest).event())
        await self._handler.write_event(AudioStop().event())


class TextStream:
    """A text that arrives in parts (``synthesize-chunk``): each finished sentence is spoken while the
    rest arrives; the audio is one ``audio-start`` .. ``audio-stop``, then ``synthesize-stopped``. The
    admission place and the voice's lease are held while there is text to speak, and given back while
    the stream waits for more: a stream left open and silent must not lock other clients out."""

    def __init__(self, handler: Connection, spec: ModelSpec, speaker: int | None) -> None:
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
            out: AudioOut | None = None
            while (part := await self._parts.get()) is not None:
                text, last = part
                plan = await plan_part(self._spec, text, self._speaker, out is None)
                if not last:  # a sentence that more text follows: its pause after it
                    plan.pieces[-1] = (plan.pieces[-1][0], pause)
                if speaking is None:
                    speaking = Speaking(handler.state, plan)
                    await speaking.open(None)
                    out = out or AudioOut(handler, plan.sample_rate)
                else:
                    speaking.then(plan)
                while (audio := await speaking.next()) is not None:
                    await out.send(audio)  # type: ignore[union-attr]
                if self._parts.empty():  # all said until more text comes: the place and the voice go back
                    await speaking.close()
                    speaking = None
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


# ---- checks ---------------------------------------------------------------------------------------


async def plan_part(spec: ModelSpec, text: str, speaker: int | None, first_cut: bool) -> Any:
    job: Callable[[], Any] = partial(plan_speech, spec, text, speaker=speaker, first_cut=first_cut)
    try:
        return await anyio.to_thread.run_sync(job)
    except errors.ConfigError as exc:
        raise WyomingError(Code.BAD_REQUEST, f"text: {exc}") from None
