"""The Wyoming protocol's wire, read with bounds, and what ``describe`` answers.

An event is one JSON line (``type``, ``data``, ``data_length``, ``payload_length``), then
``data_length`` bytes of JSON merged into ``data``, then ``payload_length`` raw bytes. The ``wyoming``
package's own reader trusts all of it: a header naming a gigabyte payload is buffered whole, a header
that is a list or lacks its type raises out of the handler. :func:`read_event` checks each part before
reading the next, so a hostile or broken client gets an ``error`` event and a closed connection, never
the server's memory.
"""

from __future__ import annotations

import asyncio
import enum
import json
from typing import Any

from wyoming.event import Event
from wyoming.info import AsrModel, AsrProgram, Attribution, Info, TtsProgram, TtsVoice, TtsVoiceSpeaker

from voxmill.models import ModelSpec

__all__ = ["MAX_DATA_BYTES", "MAX_LINE_BYTES", "MAX_PAYLOAD_BYTES", "Code", "WyomingError", "build_info", "read_event"]

# Home Assistant sends ~2 KiB audio chunks and short headers; these leave room for any sane client.
MAX_LINE_BYTES = 64 * 1024  # also the stream reader's limit (asyncio's default)
MAX_DATA_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 1024 * 1024
MAX_TYPE_CHARS = 64


class Code(str, enum.Enum):  # enum.StrEnum is 3.11+; voxmill supports 3.10
    """The ``code`` of an ``error`` event."""

    BAD_EVENT = "bad_event"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    BAD_REQUEST = "bad_request"
    UNKNOWN_VOICE = "unknown_voice"
    UNKNOWN_MODEL = "unknown_model"
    UNKNOWN_SPEAKER = "unknown_speaker"
    BAD_AUDIO_FORMAT = "bad_audio_format"
    AUDIO_TOO_LONG = "audio_too_long"
    SERVER_BUSY = "server_busy"
    MODEL_UNAVAILABLE = "model_unavailable"
    INTERNAL = "internal"


class WyomingError(Exception):
    """A request that cannot be served: the client gets ``Error(message, code)`` and the connection closes
    (Home Assistant's readers ignore ``error`` events and wait for audio or a transcript: only the close
    ends their wait)."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _length(header: dict[str, Any], key: str, limit: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise WyomingError(Code.BAD_EVENT, f"{key}: expected a whole number of bytes, got {str(value)[:40]!r}")
    if value > limit:
        raise WyomingError(Code.PAYLOAD_TOO_LARGE, f"{key} {value}: over the limit of {limit} bytes")
    return value


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; deep nesting recurses
        raise WyomingError(Code.BAD_EVENT, f"{what}: not JSON") from None
    if not isinstance(value, dict):
        raise WyomingError(Code.BAD_EVENT, f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, or None at the end of the stream (also one cut inside an event). WyomingError for
    anything malformed or over the limits; the body of an oversize event is never read."""
    try:
        line = await reader.readline()
    except ValueError:  # asyncio's LimitOverrunError, re-raised by readline: the framing is lost
        raise WyomingError(Code.PAYLOAD_TOO_LARGE, f"header line over {MAX_LINE_BYTES} bytes") from None
    if not line.endswith(b"\n"):
        return None
    header = _json_object(line, "header")
    kind = header.get("type")
    if not isinstance(kind, str) or not 0 < len(kind) <= MAX_TYPE_CHARS:
        raise WyomingError(Code.BAD_EVENT, f"type: expected a name of 1 to {MAX_TYPE_CHARS} characters")
    data = header.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise WyomingError(Code.BAD_EVENT, f"data: expected a JSON object, got {type(data).__name__}")
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    try:
        if data_length:
            data = {**data, **_json_object(await reader.readexactly(data_length), "data")}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    return Event(type=kind, data=data, payload=payload)


# ---- describe ----------------------------------------------------------------------------------------

_PIPER = Attribution(name="rhasspy", url="https://github.com/rhasspy/piper")
_WHISPER = Attribution(name="OpenAI", url="https://github.com/openai/whisper")
_VOXMILL = Attribution(name="voxmill", url="https://pypi.org/project/voxmill/")


def bare_name(spec: ModelSpec) -> str:
    """The name without its kind (``en_US-joe-medium``): what wyoming-piper calls the voice, so Home
    Assistant set up for it keeps its voice settings; ``piper:NAME`` is accepted too."""
    return spec.name.split(":", 1)[1] if ":" in spec.name else spec.name


def _voice(spec: ModelSpec) -> TtsVoice:
    config = spec.voice
    language = (config.locale if config is not None else None) or spec.language or "en"
    names = sorted(config.speaker_id_map, key=config.speaker_id_map.__getitem__) if config is not None else []
    return TtsVoice(name=bare_name(spec), attribution=_PIPER, installed=True, description=spec.name,
                    version=None, languages=[language],
                    speakers=[TtsVoiceSpeaker(name=n) for n in names] or None)  # fmt: skip


def _whisper_languages() -> list[str]:
    try:
        from faster_whisper.tokenizer import _LANGUAGE_CODES
    except ImportError:
        return []
    return list(_LANGUAGE_CODES)


def build_info(piper: list[ModelSpec], whisper: list[ModelSpec], version: str) -> Info:
    """One TTS program with every Piper voice; one ASR program with the Whisper models (none: no ASR)."""
    voices = [_voice(s) for s in piper]
    tts = TtsProgram(name="voxmill", attribution=_VOXMILL, installed=True, description="voxmill Piper voices",
                     version=version, voices=voices, supports_synthesize_streaming=True)  # fmt: skip
    asr = []
    if whisper:
        models = [AsrModel(name=s.name, attribution=_WHISPER, installed=True, description=s.name, version=None,
                           languages=[s.language] if s.language else _whisper_languages())
                  for s in whisper]  # fmt: skip
        asr = [AsrProgram(name="voxmill-whisper", attribution=_VOXMILL, installed=True, version=version,
                          description="voxmill faster-whisper models", models=models,
                          supports_transcript_streaming=False)]  # fmt: skip
    return Info(tts=[tts], asr=asr)
