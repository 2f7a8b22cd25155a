"""The Wyoming protocol on a real server (beside the HTTP API, on loopback) through the ``wyoming``
package's own client: describe, plain and streamed speech, speech transcribed back, concurrent clients,
and hostile bytes that must not stop the server."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import numpy as np
import pytest

pytest.importorskip("wyoming")

from tests.serving import make_settings, run_bounded, served, wyoming_served
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from voxmill.server.speaking import speak_to_array

VOICE = "en_US-joe-medium"
RATE = 22050
TEXT = "The mill stood by the river. Its wheel turned all day long. At night the miller slept."
T = TypeVar("T")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Any, str, int]]:
    with wyoming_served() as served_here:
        yield served_here


def run(coro: Callable[[], Awaitable[T]], timeout: float = 120.0) -> T:
    return run_bounded(coro, timeout)


async def read_until(client: AsyncTcpClient, last: str) -> list[Event]:
    events = []
    while True:
        event = await client.read_event()
        assert event is not None, f"connection closed before {last}; got {[e.type for e in events]}"
        events.append(event)
        if event.type == last:
            return events


def pcm_seconds(events: list[Event]) -> float:
    chunks = [AudioChunk.from_event(e) for e in events if AudioChunk.is_type(e.type)]
    assert all(c.rate == RATE and c.width == 2 and c.channels == 1 for c in chunks)
    return sum(len(c.audio) for c in chunks) / 2 / RATE


def test_describe_lists_voice_and_asr(server: tuple[Any, str, int]) -> None:
    _, host, port = server

    async def go() -> Info:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Describe().event())
            event = await client.read_event()
            assert event is not None and Info.is_type(event.type)
            return Info.from_event(event)

    info = run(go)
    (tts,) = info.tts
    voice = next(v for v in tts.voices if v.name == VOICE)
    assert voice.languages == ["en_US"] and voice.installed
    assert tts.supports_synthesize_streaming
    assert [m.name for m in info.asr[0].models] == ["whisper:tiny.en"]


def test_synthesize_audio_length_and_rate(server: tuple[Any, str, int]) -> None:
    state, host, port = server

    async def go() -> list[Event]:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Synthesize(text=TEXT, voice=SynthesizeVoice(name=VOICE)).event())
            return await read_until(client, "audio-stop")

    events = run(go)
    types = [e.type for e in events]
    assert types[0] == "audio-start" and types.count("audio-start") == 1 and types.count("audio-stop") == 1
    start = AudioStart.from_event(events[0])
    assert (start.rate, start.width, start.channels) == (RATE, 2, 1)
    assert all(len(AudioChunk.from_event(e).audio) == 2048 for e in events[1:-2])  # 1024 samples each
    rate, audio = speak_to_array(state, "piper:" + VOICE, TEXT)
    assert rate == RATE
    assert pcm_seconds(events) == pytest.approx(audio.size / RATE, rel=0.1)


def test_streaming_first_chunk_before_last_sentence(server: tuple[Any, str, int]) -> None:
    state, host, port = server
    first, rest = "The mill stood by the river. Its", " wheel turned all day long. At night the miller slept."

    async def go() -> list[Event]:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=VOICE)).event())
            await client.write_event(SynthesizeChunk(text=first).event())
            early = await read_until(client, "audio-chunk")  # before the rest of the text is sent
            for word in rest.split(" "):
                await client.write_event(SynthesizeChunk(text=word + " ").event())
            await client.write_event(Synthesize(text=first + rest, voice=SynthesizeVoice(name=VOICE)).event())
            await client.write_event(SynthesizeStop().event())
            return early + await read_until(client, "synthesize-stopped")

    events = run(go)
    types = [e.type for e in events]
    assert types.count("audio-start") == 1 and types.count("audio-stop") == 1
    assert types.index("audio-stop") == len(types) - 2
    _, audio = speak_to_array(state, "piper:" + VOICE, first + rest)
    assert pcm_seconds(events) == pytest.approx(audio.size / RATE, rel=0.15)  # the repeated text not spoken twice


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())

    return float(jiwer.wer(norm(reference), norm(hypothesis)))


def test_speech_transcribed_back(server: tuple[Any, str, int], synth: Callable[[str], Any]) -> None:
    pytest.importorskip("faster_whisper")
    pytest.importorskip("jiwer")
    from voxmill.audio.resample import resample

    _, host, port = server
    # The voice's speech with noise 0 (the conftest fixture): the server speaks with the voice's random
    # noise, and one take in a few dozen had a word error rate past the bound.
    audio = synth(TEXT).samples
    mono16 = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    loud = resample(audio, RATE, 48000)
    stereo32 = (np.repeat(np.clip(loud, -1, 1)[:, None], 2, axis=1) * (2**31 - 1)).astype("<i4").tobytes()

    async def go(pcm: bytes, rate: int, width: int, channels: int) -> str:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Transcribe(language="en-US").event())
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
            step = 1024 * width * channels
            for start in range(0, len(pcm), step):
                chunk = AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[start : start + step])
                await client.write_event(chunk.event())
            await client.write_event(AudioStop().event())
            event = (await read_until(client, "transcript"))[-1]
            return str(event.data["text"])

    assert wer(TEXT, run(lambda: go(mono16, RATE, 2, 1))) <= 0.15
    assert wer(TEXT, run(lambda: go(stereo32, 48000, 4, 2))) <= 0.15


def test_four_clients_at_once(server: tuple[Any, str, int]) -> None:
    state, host, port = server
    texts = [f"Client {n} asks the mill for bread. The miller answers at once." for n in range(4)]

    async def one(text: str) -> float:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=VOICE)).event())
            return pcm_seconds(await read_until(client, "audio-stop"))

    async def go() -> list[float]:
        return list(await asyncio.gather(*(one(t) for t in texts)))

    assert all(seconds > 1.0 for seconds in run(go))
    assert sum(1 for s in state.manager.status() if VOICE in s.name) == 1  # one copy of the voice, leased 4 times
    assert state.scheduler.admitted() == 0


HOSTILE = [
    (b"this is not json\n", "bad_event"),
    (b"[1, 2]\n", "bad_event"),
    (b'{"data": {}}\n', "bad_event"),
    (b'{"type": "synthesize", "data": [1]}\n', "bad_event"),
    (b'{"type": "synthesize", "payload_length": 100000000}\n', "payload_too_large"),
    (b'{"type": "synthesize", "data_length": "abc"}\n', "bad_event"),
    (b"x" * 70_000 + b"\n", "payload_too_large"),
    (b'{"type": "synthesize", "data": {"text": "Hi.", "voice": {"name": "nobody-such"}}}\n', "unknown_voice"),
    (b'{"type": "synthesize", "data": {"text": 5}}\n', "bad_request"),
    (b'{"type": "audio-chunk", "data": {"rate": 1, "width": 2, "channels": 1}}\n', "bad_audio_format"),
]


@pytest.mark.parametrize(("garbage", "code"), HOSTILE, ids=range(len(HOSTILE)))
def test_garbage_gets_an_error_and_the_server_lives(server: tuple[Any, str, int], garbage: bytes, code: str) -> None:
    _, host, port = server

    async def go() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(garbage)
        await writer.drain()
        event = await asyncio.wait_for(async_read_event(reader), 5)
        assert event is not None and event.type == "error", event
        assert event.data["code"] == code
        assert await asyncio.wait_for(reader.read(), 5) == b""  # then the connection closes
        writer.close()
        async with AsyncTcpClient(host, port) as client:  # a fresh connection is served
            await client.write_event(Ping(text="hi").event())
            await client.write_event(Event("not-a-known-event"))
            await client.write_event(Describe().event())
            types = [e.type for e in await read_until(client, "info")]
            assert types == ["pong", "info"]

    run(go, 30)


def test_client_leaving_mid_speech_frees_its_place(server: tuple[Any, str, int]) -> None:
    state, host, port = server

    async def go() -> None:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Synthesize(text=TEXT * 20, voice=SynthesizeVoice(name=VOICE)).event())
            await read_until(client, "audio-chunk")

    run(go)
    deadline = time.monotonic() + 20
    while state.scheduler.admitted() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert state.scheduler.admitted() == 0
    assert all(s.refs == 0 for s in state.manager.status())


def test_full_queue_says_busy_on_a_unix_socket(tmp_path: Any) -> None:
    path = tmp_path / "wyoming.sock"
    with served(make_settings(wyoming=f"unix://{path}", max_queue=1)) as (_, app):
        assert app.state.voxmill.wyoming_address == f"unix://{path}"

        async def go() -> str:
            long = Synthesize(text=TEXT * 20, voice=SynthesizeVoice(name=VOICE)).event()
            first_reader, first = await asyncio.open_unix_connection(str(path))
            await async_write_event(long, first)
            assert (await async_read_event(first_reader)).type == "audio-start"  # type: ignore[union-attr]
            reader, writer = await asyncio.open_unix_connection(str(path))
            await async_write_event(long, writer)
            event = await asyncio.wait_for(async_read_event(reader), 10)
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            first.close()
            assert event is not None and event.type == "error"
            return str(event.data["code"])

        assert run(go, 60) == "server_busy"


@pytest.mark.parametrize("uri", ["tcp://host", "stdio://", "http://h:1", "tcp://h:70000", "unix://"])
def test_bad_wyoming_uri_is_a_config_error(uri: str) -> None:
    from voxmill import errors
    from voxmill.config import ServerSettings

    with pytest.raises(errors.ConfigError, match="wyoming"):
        ServerSettings().updated({"wyoming": uri})


@pytest.mark.parametrize("by", ["flags", "settings"])
def test_wyoming_only_cli_answers_and_stops_on_sigterm(tmp_path: Any, by: str) -> None:
    """``voxmill serve --wyoming URI --no-http`` (or server.wyoming + server.http: false, here through the
    environment): the Wyoming listener alone, no HTTP port; SIGTERM -> exit 0."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = {**os.environ, "VOXMILL_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "voxmill", "--quiet", "serve", "--wyoming", f"tcp://127.0.0.1:{port}", "--no-http"]
    if by == "settings":
        env.update(VOXMILL_SERVER_WYOMING=f"tcp://127.0.0.1:{port}", VOXMILL_SERVER_HTTP="false")
        command = command[:5]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:

        async def describe() -> Info | None:
            for _ in range(300):
                if proc.poll() is not None:
                    return None
                try:
                    async with AsyncTcpClient("127.0.0.1", port, read_timeout=10) as client:
                        await client.write_event(Describe().event())
                        event = await client.read_event()
                        return Info.from_event(event) if event is not None else None
                except OSError:
                    await asyncio.sleep(0.2)
            return None

        info = run(describe, 90)
        assert info is not None, proc.stdout.read().decode(errors="replace") if proc.poll() is not None else "no info"
        assert any(v.name == VOICE for v in info.tts[0].voices)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_no_http_without_wyoming_is_a_usage_error(tmp_path: Any) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "VOXMILL_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "voxmill", "serve", "--no-http"], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode != 0
    assert "needs --wyoming URI" in done.stdout + done.stderr


def test_client_audio_is_kept_at_16k_as_it_arrives() -> None:
    from voxmill.server.wyoming_asr import AsrAudio

    rate = 44100
    sine = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 0.5 * 32767).astype("<i2").tobytes()
    cuts = sorted(np.random.default_rng(0).choice(np.arange(1, rate), 36, replace=False))
    bounds = [0, *(int(c) * 2 for c in cuts), len(sine)]  # 37 uneven chunks, whole frames each
    audio = AsrAudio(rate)
    for start, end in itertools.pairwise(bounds):
        audio.add(AudioChunk(rate=rate, width=2, channels=1, audio=sine[start:end]))
    samples = np.frombuffer(audio.finish(), "<i2").astype(np.float32) / 32768.0
    assert abs(samples.size - 16000) <= 32
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.fft.rfftfreq(samples.size, 1 / 16000)[int(np.argmax(spectrum))] == pytest.approx(440, abs=2)


def test_audio_over_300_seconds_is_refused(server: tuple[Any, str, int]) -> None:
    _, host, port = server
    rate = 8000
    second = bytes(2 * rate)  # 1 s of 16-bit silence: the 301st chunk crosses the limit, none follows it

    async def go() -> Event | None:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
            for _ in range(301):
                await client.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=second).event())
            return await client.read_event()

    event = run(go, 60)
    assert event is not None and event.type == "error", event
    assert event.data["code"] == "audio_too_long"
