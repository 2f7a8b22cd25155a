"""The server under bad input and overload: a fuzzer's few hundred malformed requests get 4xx JSON (never a
5xx, never a traceback); a full queue answers 503 with Retry-After; no name reaches a file."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
from tests.serving import make_settings, served

ROUTES_JSON = ["/v1/audio/speech", "/api/load", "/api/unload", "/api/settings", "/v2/repository/index",
               "/v2/repository/models/piper:en_US-joe-medium/load", "/api/profiles/x/preload"]  # fmt: skip
NAMES = ["../../etc/passwd", "/etc/passwd", "piper:../../x", "C:\\x.onnx", "x.onnx", "\x00", "\u202e\u0430lloy",
         "голос", "声音", "a" * 5000, "", " ", "piper:", "whisper:", "%2e%2e%2fetc", "alloy\n",
         "silero-vad"]  # fmt: skip


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value: wrong types, huge or odd strings, NaN-ish numbers, nesting."""
    choice = rng.randrange(11 if depth < 2 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 2**63, -(2**70), 1e308, -1e-308, 3])
    if choice == 3:
        return rng.choice([0.25, 4.0, 4.01, 0.24, -0.0, 1e-9])
    if choice == 4:
        return rng.choice(NAMES)
    if choice == 5:
        return "".join(chr(rng.randrange(1, 0x2FFFF)) for _ in range(rng.randrange(1, 40)))
    if choice == 6:
        return rng.choice(["mp3", "opus", "aac", "flac", "wav", "pcm", "MP3", "ogg", "sse", "audio", "5m", "-1"])
    if choice == 7:
        return "x" * rng.choice([1, 300, 30_000])
    if choice == 8:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {str(junk(rng, depth + 1))[:20]: junk(rng, depth + 1) for _ in range(rng.randrange(3))}


SPEECH_FIELDS = ["model", "input", "voice", "response_format", "speed", "stream_format", "noise_scale", "noise_w",
                 "sentence_silence", "keep_alive", "speaker", "instructions"]  # fmt: skip


def speech_body(rng: random.Random) -> Any:
    if rng.random() < 0.1:
        return junk(rng)
    body: dict[str, Any] = {"model": "tts-1", "voice": "alloy", "input": "Hi."}
    for field in rng.sample(SPEECH_FIELDS, rng.randrange(1, 5)):
        body[field] = junk(rng)
    if isinstance(body.get("input"), str):
        body["input"] = body["input"][:60]  # a valid one is spoken: keep the fuzzer fast
    return body


def raw_bodies(rng: random.Random) -> Iterator[bytes]:
    yield b"{"
    yield b'{"input": "x", }'
    yield b"\xff\xfe\x00garbage"
    yield b"[" * 10_000 + b"]" * 10_000
    yield json.dumps({"input": "x" * 100}).encode()[:-3]
    yield b"null"
    yield b'"just a string"'
    yield bytes(rng.randrange(256) for _ in range(200))


def multipart(rng: random.Random) -> tuple[bytes, str]:
    """A multipart body, often broken: truncated, bad boundary, garbage audio, wrong fields."""
    boundary = "voxmillfuzz"
    parts = []
    if rng.random() < 0.8:
        noise = bytes(rng.randrange(256) for _ in range(500))
        audio = rng.choice([b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", noise, b"ID3\x03\x00" + b"\x00" * 100,
                            b"OggS" + b"\x00" * 60, b"fLaC" + b"\x00" * 40])  # fmt: skip
        name = rng.choice(["a.wav", "../../x.mp3", "голос.flac", "", "x" * 300, "a\x00b.wav", "/etc/passwd"])
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        parts.append(head.encode("utf-8", "surrogatepass") + b"Content-Type: audio/wav\r\n\r\n" + audio + b"\r\n")
    for field in rng.sample(["model", "language", "prompt", "temperature", "response_format",
                             "timestamp_granularities[]", "keep_alive"], rng.randrange(4)):  # fmt: skip
        value = str(junk(rng))[:500]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"\r\n\r\n{value}\r\n'.encode(
            "utf-8", "surrogatepass"))  # fmt: skip
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    cut = rng.random()
    if cut < 0.2:
        body = body[: rng.randrange(max(1, len(body)))]  # truncated
    content_type = f"multipart/form-data; boundary={boundary}"
    if cut > 0.9:
        content_type = rng.choice(["multipart/form-data", "multipart/form-data; boundary=", "text/plain"])
    return body, content_type


def post_json(client: httpx.Client, route: str, value: Any) -> httpx.Response:
    # json.dumps escapes lone surrogates ("\\udec3"): the server must cope with what httpx would refuse to send.
    return client.post(route, content=json.dumps(value), headers={"content-type": "application/json"})


def check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500 or (response.status_code == 503 and "retry-after" in response.headers), (
        f"{what}: {response.status_code} {response.text[:300]}"
    )
    assert "Traceback" not in response.text, what
    if response.status_code >= 400:
        assert "error" in response.json(), what


def test_fuzz_gets_no_5xx() -> None:
    rng = random.Random(19)
    settings = make_settings(max_body_bytes=2_000_000, max_input_chars=2000)
    with served(settings) as (url, _), httpx.Client(base_url=url, timeout=120) as client:
        sent = 0
        for _ in range(120):
            body = speech_body(rng)
            check(post_json(client, "/v1/audio/speech", body), f"speech {body!r:.200}")
            sent += 1
        for raw in raw_bodies(rng):
            for route in ROUTES_JSON:
                check(client.post(route, content=raw, headers={"content-type": "application/json"}), f"{route} raw")
                sent += 1
        for _ in range(80):
            body, content_type = multipart(rng)
            check(client.post("/v1/audio/transcriptions", content=body, headers={"content-type": content_type}),
                  f"multipart {body[:120]!r}")  # fmt: skip
            sent += 1
        for _ in range(60):
            route = rng.choice(ROUTES_JSON)
            value = junk(rng)
            check(post_json(client, route, value), f"{route} {value!r:.200}")
            sent += 1
        for raw_name in NAMES:
            name = quote(raw_name, safe=":")  # as a client would send it; the server decodes it back
            for path in (f"/v1/models/{name}", f"/v2/repository/models/{name}/load", f"/api/profiles/{name}/release"):
                method = "GET" if path.startswith("/v1/models") else "POST"
                check(client.request(method, path), path)
                sent += 1
        for method in ("PUT", "DELETE", "PATCH", "GET"):
            check(client.request(method, "/v1/audio/speech"), method)
            sent += 1
        assert sent >= 300
        assert client.get("/healthz").status_code == 200  # still serving


def test_full_queue_answers_503_with_retry_after() -> None:
    settings = make_settings(max_queue=1)
    long_text = "The mill stood at the bottom of a narrow valley, where the river turned. " * 40
    with served(settings) as (url, _):
        first_started = threading.Event()
        done = threading.Event()

        def hold() -> None:  # a long streamed request that holds the one place
            body = {"model": "tts-1", "voice": "alloy", "input": long_text, "response_format": "pcm"}
            with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=300) as response:
                assert response.status_code == 200
                for _ in response.iter_bytes():
                    first_started.set()
                    if done.is_set():
                        break

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert first_started.wait(120)
            busy = httpx.post(f"{url}/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi."})
            assert busy.status_code == 503
            assert int(busy.headers["retry-after"]) >= 1
            assert "busy" in busy.json()["error"]["message"]
        finally:
            done.set()
            holder.join(120)
        # The place is given back when the stream ends (the client went away): a request gets through.
        deadline = time.monotonic() + 30
        while True:
            again = httpx.post(f"{url}/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "input": "Hi."},
                               timeout=120)  # fmt: skip
            if again.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert again.status_code == 200


def test_a_stalled_upload_is_given_up(monkeypatch) -> None:
    import socket

    from voxmill.server import limits

    monkeypatch.setattr(limits, "BODY_IDLE_SECONDS", 1.0)
    with served() as (url, _):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            head = (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n"
                    "Content-Type: multipart/form-data; boundary=x\r\n\r\n--x\r\n")  # fmt: skip
            sock.sendall(head.encode())
            started = time.monotonic()
            reply = sock.recv(4096).decode()
        assert reply.startswith("HTTP/1.1 408"), reply[:200]
        assert time.monotonic() - started < 20


def test_keep_alive_negative_numbers_keep() -> None:
    from voxmill.server.state import KEEP_FOREVER, parse_keep_alive

    for value in (-1, -1e-7, -1e308, "-5m", "-1"):
        assert parse_keep_alive(value) == KEEP_FOREVER


def test_hours_of_silence_are_refused() -> None:
    with served() as (url, _):
        body = {"model": "tts-1", "voice": "alloy", "input": "Hi. " * 3000, "speed": 0.25, "sentence_silence": 10,
                "response_format": "pcm"}  # fmt: skip
        answer = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=60)
        assert answer.status_code == 400 and "silence" in answer.json()["error"]["message"]


def test_a_proxied_client_is_not_loopback() -> None:
    # nginx on the same machine connects from 127.0.0.1 for clients anywhere: without a token, no admin.
    with served() as (url, _):
        assert httpx.get(f"{url}/api/ps").status_code == 200
        proxied = httpx.get(f"{url}/api/ps", headers={"X-Forwarded-For": "203.0.113.9"})
        assert proxied.status_code == 403 and "loopback" in proxied.json()["error"]["message"]


def test_readyz_says_why_a_preload_failed() -> None:
    import dataclasses

    settings = dataclasses.replace(make_settings(), profiles={"broken": ["piper:no-such-voice"]})
    with served(settings, preload=["broken"]) as (url, _):
        deadline = time.monotonic() + 30
        while (ready := httpx.get(f"{url}/readyz").json())["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready["status"] == "failed" and "no-such-voice" in ready["errors"][0]
        assert httpx.get(f"{url}/healthz").status_code == 200
