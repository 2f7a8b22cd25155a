"""Hostile clients of the audio API (issue 19, attack pass A1), each a hole found and fixed: speech served
without the token under ``auth: all``, a client that stops reading holding its place and voice for
ever, audio cut by a server error that looked complete, a transcription that went on after its client
left, a second uploaded file silently transcribed instead of the first, and /v1/models listing one id
twice or missing an alias written without its ``kind:`` prefix."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi")

from tests.serving import make_settings, served

from voxmill.audio import Audio, save
from voxmill.server import speech as speech_route

SENTENCES = "It was the best of times. It was the worst of times. It was the age of wisdom. " * 3


def _until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _raw_post(url: str, path: str, body: bytes, content_type: str) -> socket.socket:
    """A request sent whole on a socket whose reader then does nothing (a tiny receive window)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    sock.sendall(head.encode() + body)
    return sock


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = RST
    sock.close()


def _refs(app: Any, name: str) -> int:
    return sum(row.refs for row in app.state.voxmill.manager.status() if row.name == name)


# ---- speech --------------------------------------------------------------------------------------------


def test_speech_needs_the_token_with_auth_all(monkeypatch: pytest.MonkeyPatch) -> None:
    # Hole: the speech router had no require_api dependency; transcription and /v1/models had it.
    monkeypatch.setenv("VOXMILL_ADMIN_TOKEN", "s3cret")
    body = {"input": "Hi.", "response_format": "wav"}
    with served(make_settings(auth="all")) as (url, _):
        refused = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=60)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
        wrong = httpx.post(f"{url}/v1/audio/speech", json=body, headers={"Authorization": "Bearer s3cre"}, timeout=60)
        assert wrong.status_code == 401
        ok = httpx.post(f"{url}/v1/audio/speech", json=body, headers={"Authorization": "Bearer s3cret"}, timeout=60)
        assert ok.status_code == 200 and ok.content[:4] == b"RIFF"


def test_a_client_that_stops_reading_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Hole: a client that keeps its socket open and reads nothing blocked the stream's send for ever,
    # holding an admission place and the voice's lease (16 such sockets: every speech request 503).
    monkeypatch.setattr(speech_route, "SEND_TIMEOUT_S", 1.0)
    voice = "piper:en_US-joe-medium"
    # Pauses of 40 s (10 s at speed 0.25): ~9 MB of WAV that costs almost no synthesis.
    body = {"input": "Hi. " * 5, "response_format": "wav", "speed": 0.25, "sentence_silence": 10.0}
    with served(make_settings()) as (url, app):
        scheduler = app.state.voxmill.scheduler
        sock = _raw_post(url, "/v1/audio/speech", json.dumps(body).encode(), "application/json")
        try:
            assert _until(lambda: scheduler.admitted("piper") == 1, 30)
            assert _until(lambda: scheduler.admitted("piper") == 0 and _refs(app, voice) == 0, 20)
        finally:
            _reset(sock)
        assert httpx.post(f"{url}/v1/audio/speech", json={"input": "Hi.", "response_format": "wav"}).status_code == 200


def test_audio_cut_by_an_error_is_not_a_complete_file() -> None:
    # Hole: an error after the first bytes ended the audio with a clean last chunk, so the client got a
    # shorter file that looked whole (a silent loss). Now the transfer is cut: the client sees an error.
    # Closing the scheduler mid-stream (what shutdown does) makes the next piece fail for real.
    with served(make_settings()) as (url, app):
        body = {"input": SENTENCES, "response_format": "pcm", "noise_scale": 0, "noise_w": 0}
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=60) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            next(chunks)
            closer = threading.Thread(target=app.state.voxmill.scheduler.close)
            closer.start()
            with pytest.raises(httpx.RemoteProtocolError):
                for _ in chunks:
                    pass
            closer.join(30)


# ---- transcription --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_wav(speech: Audio) -> bytes:
    """Ten minutes of real speech (the demo sentences forty times), 16 kHz 16-bit WAV (19 MB): minutes of
    work for tiny.en on a small machine, tens of seconds on a large one."""
    import soundfile as sf
    import soxr

    samples = soxr.resample(np.concatenate([speech.samples] * 40), speech.sample_rate, 16000)
    out = io.BytesIO()
    sf.write(out, samples, 16000, format="WAV", subtype="PCM_16")
    return out.getvalue()


def _multipart(parts: list[tuple[str, str, bytes]], boundary: str = "a1bound", **fields: str) -> bytes:
    out = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                   for k, v in fields.items())  # fmt: skip
    for field, filename, data in parts:
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                f"Content-Type: audio/wav\r\n\r\n").encode() + data + b"\r\n"  # fmt: skip
    return out + f"--{boundary}--\r\n".encode()


def test_a_transcription_stops_when_its_client_leaves(long_wav: bytes, short_speech: Audio, tmp_path: Any) -> None:
    # Hole: a client that uploaded an hour of audio and left kept a whisper place (and a worker) busy
    # until the whole file was transcribed for nobody. Now the route watches for the disconnect.
    short = save(tmp_path / "short.wav", short_speech).read_bytes()
    with served(make_settings(max_queue=1)) as (url, app):
        scheduler = app.state.voxmill.scheduler
        warm = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": ("s.wav", short)}, timeout=120)
        assert warm.status_code == 200  # the model is loaded: what follows times the transcription only
        # temperature 0.2: one decode per 30-s window (0 may decode a window six times at rising temperatures)
        upload = _multipart([("file", "long.wav", long_wav)], temperature="0.2")
        sock = _raw_post(url, "/v1/audio/transcriptions", upload, "multipart/form-data; boundary=a1bound")
        try:
            assert _until(lambda: scheduler.running > 0, 30)  # decoding or transcribing
            time.sleep(1.0)
        finally:
            _reset(sock)
        left = time.monotonic()
        # Stopped after the window being decoded (~2.5 s here; the whole file: ~50 s), its place freed.
        assert _until(lambda: scheduler.admitted("whisper") == 0 and scheduler.running == 0, 10), (
            f"still busy {time.monotonic() - left:.1f} s after the client left"
        )
        answer = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": ("s.wav", short)}, timeout=120)
        assert answer.status_code == 200 and answer.json()["text"]


def test_two_files_in_one_upload_are_refused(short_speech: Audio, tmp_path: Any) -> None:
    # Hole: FastAPI keeps the last of two `file` parts: the client got the transcript of the other file.
    short = save(tmp_path / "short.wav", short_speech).read_bytes()
    with served(make_settings()) as (url, _):
        body = _multipart([("file", "first.wav", short), ("file", "second.wav", b"not audio")])
        answer = httpx.post(f"{url}/v1/audio/transcriptions", content=body,
                            headers={"Content-Type": "multipart/form-data; boundary=a1bound"}, timeout=60)  # fmt: skip
        assert answer.status_code == 400 and answer.json()["error"]["param"] == "file"
        assert "one file per request, got 2" in answer.json()["error"]["message"]


# ---- the catalog -----------------------------------------------------------------------------------------


def test_models_list_each_id_once_and_aliases_without_a_prefix() -> None:
    # Holes: an alias spelling a model's own name listed that id twice (with two different targets), and
    # an alias whose target has no "whisper:" prefix was taken for a voice and left out.
    aliases = {"piper:en_US-joe-medium": "whisper:tiny.en", "stt": "tiny.en", "narrator": "en_US-joe-medium"}
    with served(make_settings(aliases=aliases)) as (url, _):
        data = httpx.get(f"{url}/v1/models", timeout=30).json()["data"]
        ids = [entry["id"] for entry in data]
        assert len(ids) == len(set(ids)), ids
        by_id = {entry["id"]: entry for entry in data}
        assert by_id["stt"]["alias_of"] == "whisper:tiny.en" and by_id["stt"]["kind"] == "whisper"
        assert by_id["narrator"]["alias_of"] == "piper:en_US-joe-medium"
        # What a request naming it gets: the alias wins, in the list as in resolve().
        assert by_id["piper:en_US-joe-medium"]["alias_of"] == "whisper:tiny.en"
        one = httpx.get(f"{url}/v1/models/piper:en_US-joe-medium", timeout=30).json()
        assert one["alias_of"] == "whisper:tiny.en"
