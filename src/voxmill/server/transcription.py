"""``POST /v1/audio/transcriptions``: OpenAI's transcription API over the registry's Whisper models.

The upload is copied into a private temporary folder under a fixed name (only a short alphanumeric
suffix of the client's file name is kept, so the decoder can pick its format), decoded to 16 kHz mono
and deleted, all inside one scheduler job; the model is leased only once the audio decoded, so junk
uploads never load a model. Decoding and transcription run on the scheduler's workers, never on the
event loop. A client that disconnects stops its transcription at the next segment and frees its place.
:func:`transcribe_file` is the same path for the web UI, blocking.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, BinaryIO

import anyio
import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from voxmill import errors
from voxmill.models import ModelSpec
from voxmill.models.asr import AsrOptions, Segment, Transcript, load_audio, to_srt, to_vtt, transcribe
from voxmill.models.registry import shown
from voxmill.server.auth import require_api
from voxmill.server.problems import ApiError
from voxmill.server.scheduler import Busy, run_on
from voxmill.server.state import ServerState, parse_keep_alive

__all__ = ["FORMATS", "MAX_AUDIO_SECONDS", "router", "transcribe_file"]

log = logging.getLogger("voxmill.server")

router = APIRouter(tags=["audio"], dependencies=[Depends(require_api)])

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")
# 16 kHz float32 is 230 MB an hour: a 25 MB upload of a low-bitrate codec could otherwise decode to gigabytes.
MAX_AUDIO_SECONDS = 3600.0
RETRY_AFTER_S = 2
# How often a transcription checks that its client is still there (a request that left stops decoding).
DISCONNECT_POLL_S = 0.5
_SUFFIX = re.compile(r"\.[a-z0-9]{1,8}")


@router.post("/v1/audio/transcriptions")
async def create_transcription(
    request: Request,
    file: Annotated[UploadFile, File(description="the audio: any format voxmill reads")],
    model: Annotated[str | None, Form()] = None,
    language: Annotated[str | None, Form()] = None,
    prompt: Annotated[str | None, Form()] = None,
    temperature: Annotated[float, Form()] = 0.0,
    response_format: Annotated[str, Form()] = "json",
    granularities: Annotated[list[str] | None, Form(alias="timestamp_granularities[]")] = None,
    granularities_plain: Annotated[list[str] | None, Form(alias="timestamp_granularities")] = None,
    keep_alive: Annotated[str | None, Form()] = None,
    stream: Annotated[bool, Form()] = False,
) -> Response:
    state: ServerState = request.app.state.voxmill
    if response_format not in FORMATS:
        given = shown(response_format, 40)
        raise ApiError(400, f"response_format: expected one of {', '.join(FORMATS)}, got {given!r}", "invalid_value",
                       "response_format")  # fmt: skip
    if stream:
        raise ApiError(400, "stream: streamed transcription is not supported", "unsupported", "stream")
    wanted = set(granularities or []) | set(granularities_plain or [])
    if not wanted <= set(GRANULARITIES):
        bad = sorted(wanted - set(GRANULARITIES))[0]
        raise ApiError(400, f"timestamp_granularities[]: expected word or segment, got {shown(bad, 40)!r}",
                       "invalid_value", "timestamp_granularities[]")  # fmt: skip
    words = response_format == "verbose_json" and "word" in wanted
    try:
        options = _options(language, prompt, temperature, words)
    except errors.ConfigError as exc:
        raise ApiError(400, str(exc), "invalid_value", str(exc).split(":", 1)[0]) from None
    keep = parse_keep_alive(keep_alive)
    spec = state.resolve(model or state.server.default_asr, "whisper")
    request.state.model = spec.name
    problem = _language_problem(spec, options.language)
    if problem:
        raise ApiError(400, problem, "unsupported_language", "language")
    name = shown(file.filename or "upload", 60)
    files = (await request.form()).getlist("file")  # parsed once already: FastAPI keeps only the last file
    if len(files) > 1:
        raise ApiError(400, f"file: one file per request, got {len(files)}", "invalid_request", "file")
    left = threading.Event()

    async def work() -> Transcript:
        with state.scheduler.admit("whisper") as arrival:
            samples = await run_on(state.scheduler, arrival, lambda: _decode_upload(file.file, file.filename, name))
            async with state.leased(spec, keep) as asr:

                def job() -> Transcript:
                    return transcribe(asr, samples, options, stop=left.is_set)

                return await run_on(state.scheduler, arrival, job)

    try:
        transcript = await _unless_client_leaves(request, left, work)
    except Busy as exc:
        raise ApiError(503, str(exc), "server_busy", headers={"Retry-After": str(RETRY_AFTER_S)}) from None
    if transcript is None:  # nobody to answer: nginx's "client closed request", for the logs and metrics
        return Response(status_code=499)
    state.record_audio(spec.name, transcript.duration)
    return render(transcript, response_format, words)


def transcribe_file(
    state: ServerState, path: str | Path, model: str | None = None, language: str | None = None, words: bool = True
) -> Transcript:
    """Transcribe ``path`` with ``model`` (default: ``server.default_asr``), on the scheduler, under the
    same ``whisper`` admission as the API. Blocking: call it from a worker thread (the web UI's
    handlers), never from the event loop. Raises ModelNotFound, ConfigError, AudioError, or
    :class:`~voxmill.server.scheduler.Busy` when every place is taken."""
    spec = state.resolve(model or state.server.default_asr, "whisper")
    options = _options(language, None, 0.0, words)
    problem = _language_problem(spec, options.language)
    if problem:
        raise errors.ConfigError(problem)
    with state.scheduler.admit("whisper") as arrival:
        samples = state.scheduler.submit(lambda: load_audio(path, MAX_AUDIO_SECONDS), arrival, step=1).result()
        with state.manager.lease(spec) as asr:
            transcript = state.scheduler.submit(lambda: transcribe(asr, samples, options), arrival, step=1).result()
    state.record_audio(spec.name, transcript.duration)
    return transcript


# ---- request pieces --------------------------------------------------------------------------------


def _options(language: str | None, prompt: str | None, temperature: float, words: bool) -> AsrOptions:
    """Checked options (ConfigError naming the field); an empty language means detect it."""
    code = language.strip().lower() if language and language.strip() else None
    return AsrOptions(language=code, prompt=prompt or None, temperature=temperature, words=words).checked()


def _language_problem(spec: ModelSpec, language: str | None) -> str | None:
    # Known from the registry before the model loads: an English-only model cannot be asked for French.
    if language is not None and spec.language is not None and language != spec.language:
        return f"language {language!r}: {spec.name} only transcribes {spec.language!r}"
    return None


async def _unless_client_leaves(
    request: Request, left: threading.Event, work: Callable[[], Awaitable[Transcript]]
) -> Transcript | None:
    """``work()``, or None once the client has disconnected: ``left`` is set (a running transcription
    stops at its next segment) and ``work`` is cancelled (its queued jobs are dropped, its place freed)."""
    result: Transcript | None = None
    failure: Exception | None = None
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while not await request.is_disconnected():
                await anyio.sleep(DISCONNECT_POLL_S)
            left.set()
            group.cancel_scope.cancel()

        group.start_soon(watch)
        try:
            result = await work()
        except Exception as exc:  # raised below as it is: a task group would wrap it in an ExceptionGroup
            failure = exc
        finally:
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result


def _decode_upload(upload: BinaryIO, filename: str | None, name: str) -> np.ndarray:
    """The upload as 16 kHz mono samples, via a private temporary file that is gone when this returns."""
    suffix = PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="voxmill-upload-") as folder:  # mode 0700
        path = Path(folder) / ("upload" + (suffix if _SUFFIX.fullmatch(suffix) else ""))
        upload.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(upload, out, 1 << 20)
        if path.stat().st_size == 0:
            raise ApiError(400, f"file {name}: empty file (0 bytes)", "empty", "file")
        try:
            return load_audio(path, MAX_AUDIO_SECONDS)
        except errors.AudioDecodeError as exc:
            raise ApiError(400, f"file {name}: {exc.reason}", str(exc.code), "file") from None
        except errors.AudioError:
            raise ApiError(400, f"file {name}: longer than the limit of {MAX_AUDIO_SECONDS:g} s of audio",
                           "audio_too_long", "file") from None  # fmt: skip
        except Exception as exc:  # a decoder's own error on hostile input: still the client's file at fault
            log.warning("decoding an upload failed: %r", exc)
            raise ApiError(400, f"file {name}: cannot decode ({type(exc).__name__})", "decode", "file") from None


# ---- rendering -------------------------------------------------------------------------------------


def render(transcript: Transcript, response_format: str, words: bool = False) -> Response:
    """The response OpenAI's API gives for ``response_format``."""
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(to_srt(transcript))
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(transcript), media_type="text/vtt")
    if response_format == "verbose_json":
        return JSONResponse(verbose(transcript, words))
    return JSONResponse({"text": transcript.text})


def verbose(transcript: Transcript, words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": transcript.language,
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": [_segment(s) for s in transcript.segments],
    }
    if words:
        body["words"] = [{"word": w.word.strip(), "start": w.start, "end": w.end} for w in transcript.words]
    body["usage"] = {"type": "duration", "seconds": round(transcript.duration, 3)}
    return body


def _segment(s: Segment) -> dict[str, Any]:
    return {"id": s.id, "seek": s.seek, "start": round(s.start, 3), "end": round(s.end, 3), "text": s.text,
            "tokens": s.tokens, "temperature": s.temperature, "avg_logprob": s.avg_logprob,
            "compression_ratio": s.compression_ratio, "no_speech_prob": s.no_speech_prob}  # fmt: skip
