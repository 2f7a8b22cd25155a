"""``POST /v1/audio/speech`` through the official ``openai`` client against a real server: every format
decodes to the right length, audio streams before it is all spoken, sse events, speed, bad requests,
overload, a client that leaves, text the voice cannot read, and the library helper the web UI calls."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from tests.serving import make_settings, served

from voxmill.audio import load
from voxmill.engine import RunOptions
from voxmill.server.encode import PCM_RATE, encoder_for
from voxmill.server.speaking import speak_to_array
from voxmill.synth import SynthOptions, stream

openai = pytest.importorskip("openai")

SHORT = "The quick brown fox jumps over the lazy dog. It was a bright cold day in April."
PARAGRAPH = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, "
    "it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the season of "
    "Darkness, it was the spring of hope, it was the winter of despair. We had everything before us, we had nothing "
    "before us, we were all going direct to Heaven, we were all going direct the other way. In short, the period was "
    "so far like the present period, that some of its noisiest authorities insisted on its being received, for good "
    "or for evil, in the superlative degree of comparison only. There were a king with a large jaw and a queen with "
    "a plain face, on the throne of England; there were a king with a large jaw and a queen with a fair face, on the "
    "throne of France. In both countries it was clearer than crystal to the lords of the State preserves of loaves "
    "and fishes, that things in general were settled for ever."
)
LIMIT = 3000
QUIET = {"noise_scale": 0, "noise_w": 0}  # deterministic speech


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    with served(make_settings(max_input_chars=LIMIT)) as (url, app):
        httpx.post(f"{url}/v1/audio/speech", json={"input": "Hello.", "response_format": "wav"}, timeout=120)
        yield url, app


@pytest.fixture(scope="module")
def client(server: tuple[str, Any]) -> Any:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="x", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def reference() -> float:
    """Seconds of SHORT through the synth library (same voice, noise 0, its pauses)."""
    opts = SynthOptions(text=SHORT, noise_scale=0.0, noise_w=0.0, run=RunOptions(progress=False))
    return sum(chunk.with_pause().size / chunk.sample_rate for chunk in stream(opts))


def seconds(data: bytes, fmt: str, tmp_path: Path) -> float:
    """Decode an answer: soundfile for wav/flac, int16 at 24 kHz for pcm, PyAV (voxmill.audio.load) else."""
    if fmt == "pcm":
        return len(data) / 2 / PCM_RATE
    if fmt in ("wav", "flac"):
        samples, rate = sf.read(io.BytesIO(data))
        return len(samples) / rate
    path = tmp_path / f"speech.{fmt}"
    path.write_bytes(data)
    audio = load(path)
    return audio.frames / audio.sample_rate


# ---- formats, streaming, sse ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_format_decodes_to_the_right_length(client: Any, reference: float, fmt: str, tmp_path: Path) -> None:
    whole = client.audio.speech.create(model="tts-1", voice="alloy", input=SHORT, response_format=fmt, extra_body=QUIET)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=SHORT, response_format=fmt, extra_body=QUIET
    ) as response:
        assert response.headers["content-type"].startswith("audio/")
        streamed = b"".join(response.iter_bytes())
    for data in (whole.content, streamed):
        length = seconds(data, fmt, tmp_path)
        # The server cuts the first sentence shorter (one pause more); codecs pad by a frame or two.
        assert abs(length - reference) < 0.4 + 0.05 * reference, (fmt, length, reference)


def test_audio_streams_before_it_is_all_spoken(client: Any) -> None:
    started = time.perf_counter()
    arrivals = []
    chunks = []
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=PARAGRAPH, response_format="wav", extra_body=QUIET
    ) as response:
        for chunk in response.iter_bytes():
            arrivals.append(time.perf_counter() - started)
            chunks.append(chunk)
    first, total = arrivals[0], arrivals[-1]
    assert len(arrivals) > 3
    assert first < 0.35 * total, (first, total)
    samples, rate = sf.read(io.BytesIO(b"".join(chunks)))
    assert len(samples) / rate > 40  # ~940 characters: about a minute of speech


def test_sse_events(client: Any, reference: float) -> None:
    answer = client.audio.speech.create(
        model="tts-1", voice="alloy", input=SHORT, response_format="pcm", stream_format="sse", extra_body=QUIET
    )
    events = [json.loads(line[6:]) for line in answer.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events[:-1]] == ["speech.audio.delta"] * (len(events) - 1) and len(events) > 2
    done = events[-1]
    assert done["type"] == "speech.audio.done" and done["usage"]["input_tokens"] == len(SHORT)
    pcm = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert abs(len(pcm) / 2 / PCM_RATE - reference) < 0.4 + 0.05 * reference


def test_speed_and_model_naming_the_voice(client: Any, tmp_path: Path) -> None:
    def length(**kw: Any) -> float:
        answer = client.audio.speech.create(input=SHORT, response_format="wav", extra_body=QUIET, **kw)
        return seconds(answer.content, "wav", tmp_path)

    normal = length(model="tts-1", voice="alloy")
    assert length(model="tts-1", voice="alloy", speed=2.0) < 0.7 * normal  # durations are rounded up per phoneme
    assert length(model="piper:en_US-joe-medium", voice="alloy") == pytest.approx(normal, abs=0.01)
    assert length(model="tts-1", voice="en_US-joe-medium", instructions="cheerful") == pytest.approx(normal, abs=0.01)


def test_library_helper_for_the_ui(server: tuple[str, Any], reference: float) -> None:
    state = server[1].state.voxmill
    rate, audio = speak_to_array(state, "alloy", SHORT)
    assert rate == 22050 and audio.dtype == np.float32 and np.abs(audio).max() <= 1.0
    assert abs(audio.size / rate - reference) < 0.4 + 0.05 * reference


# ---- bad requests -----------------------------------------------------------------------------------


def _post(url: str, body: Any, **kw: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(f"{url}/v1/audio/speech", content=body, headers={"content-type": "application/json"}, **kw)
    return httpx.post(f"{url}/v1/audio/speech", json=body, timeout=60, **kw)


def test_unknown_voice_is_404_with_a_suggestion(client: Any, server: tuple[str, Any]) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.audio.speech.create(model="tts-1", voice="en_US-joe-medum", input="Hi.")
    assert "en_US-joe-medium" in str(caught.value)
    for body in ({"input": "Hi.", "model": "kokoro-v1"}, {"input": "Hi.", "model": "en_US-joe-medium", "voice": "bob"},
                 {"input": "Hi.", "voice": "../../etc/passwd"}):  # fmt: skip
        answer = _post(server[0], body)
        assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found_error", answer.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "Hi.", "speed": 5}, "speed"),
        ({"input": "Hi.", "speed": 0.1}, "speed"),
        ({"input": "Hi.", "speed": "fast"}, "speed"),
        ({"input": "Hi.", "response_format": "ogg"}, "response_format"),
        ({"input": "Hi.", "stream_format": "chunks"}, "stream_format"),
        ({"input": 5}, "input"),
        ({"voice": "alloy"}, "input"),
        ({"input": ""}, "input"),
        ({"input": "   \n "}, "input"),
        ({"input": "Hi.", "noise_scale": -1}, "noise_scale"),
        ({"input": "Hi.", "noise_w": True}, "noise_w"),
        ({"input": "Hi.", "sentence_silence": 1e9}, "sentence_silence"),
        ({"input": "Hi.", "speaker": 7}, "speaker"),
        ({"input": "Hi.", "keep_alive": "forever"}, None),
        ({"input": "Hi.", "model": ["tts-1"]}, "model"),
        ({"input": "x" * (LIMIT + 1)}, "input"),
        ([1, 2], None),
        (b'{"input": "Hi.",', None),
        (b'{"input": "Hi.", "speed": NaN}', "speed"),
        (b'{"input": "\\ud800 lone surrogate"}', "input"),
        (b'{"input": "Hi.", "voice": "\\udfff"}', "voice"),
    ],
)
def test_bad_fields_are_400(server: tuple[str, Any], body: Any, field: str | None) -> None:
    answer = _post(server[0], body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    if field is not None:
        assert error["param"] == field or field in error["message"], error
    if body == {"input": "x" * (LIMIT + 1)}:
        assert str(LIMIT) in error["message"] and "max_input_chars" in error["message"]


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Привет, как дела? Это тест.", False),
        ("这是一个测试。今天天气很好。", False),
        ("🙂🙂🙂", False),
        ("Hello Москва, and hello 北京 too.", True),
        ("Café déjà vu, naïve façade — “quoted” ‘text’ … end.", True),
    ],
)
def test_text_the_voice_cannot_read(server: tuple[str, Any], text: str, spoken: bool) -> None:
    answer = _post(server[0], {"input": text, "response_format": "wav", **QUIET})
    assert answer.status_code == (200 if spoken else 400), answer.text
    if spoken:
        samples, _ = sf.read(io.BytesIO(answer.content))
        assert len(samples) > 0
    else:
        assert answer.json()["error"]["param"] == "input"


def test_full_queue_is_503_with_retry_after(server: tuple[str, Any]) -> None:
    url, app = server
    scheduler = app.state.voxmill.scheduler
    with contextlib.ExitStack() as places:
        for _ in range(scheduler.max_queue):
            places.enter_context(scheduler.admit("piper"))
        answer = _post(url, {"input": "Hi."})
        assert answer.status_code == 503 and answer.headers["retry-after"] == "1", answer.text
        assert answer.json()["error"]["type"] == "server_busy"
    assert _post(url, {"input": "Hi.", "response_format": "wav"}).status_code == 200


def test_client_that_leaves_cancels_its_pieces(server: tuple[str, Any]) -> None:
    url, app = server
    scheduler = app.state.voxmill.scheduler
    text = " ".join([PARAGRAPH] * 3)  # ~2,800 characters: ~20 s of work on two cores
    started = time.perf_counter()
    with httpx.stream("POST", f"{url}/v1/audio/speech", json={"input": text, "response_format": "pcm", **QUIET},
                      timeout=60) as response:  # fmt: skip
        assert response.status_code == 200
        next(response.iter_bytes())
    left = time.perf_counter()

    def idle() -> bool:  # cancelled jobs leave the queue as a worker comes by
        return scheduler.admitted("piper") == 0 and scheduler.queued == 0 and scheduler.running == 0

    while not idle() and time.perf_counter() - left < 10:
        time.sleep(0.05)
    assert idle()
    assert time.perf_counter() - started < 8  # far less than speaking it all


# ---- the encoders alone -----------------------------------------------------------------------------


def test_streaming_wav_header_reads_back() -> None:
    encoder = encoder_for("wav", 22050)
    tone = (0.3 * np.sin(np.arange(22050) / 5)).astype(np.float32)
    data = encoder.feed(tone[:10000]) + encoder.feed(tone[10000:]) + encoder.finish()
    assert data[4:8] == b"\xff\xff\xff\xff" and data[40:44] == b"\xff\xff\xff\xff"
    samples, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == 22050 and np.abs(samples - tone).max() < 1e-4
