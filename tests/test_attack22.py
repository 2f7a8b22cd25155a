"""Issue 22 attacked as a hostile client would: the Wyoming listener fed malformed, oversized, odd and
abandoned requests (the same server must answer ``describe`` and speak after each), and the two-stage
VITS cache (decoder_high.onnx) damaged, edited or pointed outside. Covers only what
tests/test_serve_wyoming.py, tests/test_vits.py and tests/test_attack18_engine.py do not."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

pytest.importorskip("wyoming")

from tests.serving import make_settings, run_bounded, served, wyoming_served
from wyoming.client import AsyncTcpClient
from wyoming.event import Event, async_read_event
from wyoming.info import Describe
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

VOICE = "en_US-joe-medium"
T = TypeVar("T")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Any, str, int]]:
    with wyoming_served() as served_here:
        yield served_here


def run(coro: Callable[[], Awaitable[T]], timeout: float = 60.0) -> T:
    return run_bounded(coro, timeout)


def line(kind: str, data: Any = None, **header: Any) -> bytes:
    head: dict[str, Any] = {"type": kind, **header}
    if data is not None:
        head["data"] = data
    return json.dumps(head).encode() + b"\n"


async def exchange(host: str, port: int, raw: bytes, timeout: float = 15.0, until: str = "") -> list[Event]:
    """Send ``raw``, then read events until the server closes, goes quiet for ``timeout`` or sends ``until``."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        events = []
        while True:
            try:
                event = await asyncio.wait_for(async_read_event(reader), timeout)
            except asyncio.TimeoutError:
                break
            if event is None:
                break
            events.append(event)
            if event.type == until:
                break
        return events
    finally:
        writer.close()


def closed_with(events: list[Event], code: str) -> None:
    assert [e.type for e in events] == ["error"], [(e.type, e.data) for e in events]
    assert events[0].data["code"] == code, events[0].data


def settle(state: Any) -> None:
    """The request's admission place and voice lease were given back."""
    deadline = time.monotonic() + 20
    while (state.scheduler.admitted() or any(s.refs for s in state.manager.status())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.scheduler.admitted() == 0
    assert all(s.refs == 0 for s in state.manager.status())


async def speak(host: str, port: int, text: str = "Yes.") -> float:
    """Seconds of audio a real client gets for ``text`` (and the server answers describe first)."""
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        info = await client.read_event()
        assert info is not None and info.type == "info"
        await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name=VOICE)).event())
        seconds = 0.0
        while True:
            event = await asyncio.wait_for(client.read_event(), 30)
            assert event is not None, "closed before audio-stop"
            if event.type == "audio-chunk":
                seconds += len(event.payload or b"") / 2 / 22050
            if event.type == "audio-stop":
                return seconds
            assert event.type in ("audio-start", "audio-chunk"), (event.type, event.data)


def alive(state: Any, host: str, port: int) -> None:
    assert run(lambda: speak(host, port)) > 0.1
    settle(state)


# ---- the wire ------------------------------------------------------------------------------------


WIRE = [
    ("payload 1 MiB + 1", line("audio-chunk", payload_length=1024 * 1024 + 1), "payload_too_large"),
    ("data_length negative", line("describe", data_length=-1), "bad_event"),
    ("data_length bool", line("describe", data_length=True), "bad_event"),
    ("data_length float", line("describe", data_length=2.0), "bad_event"),
    ("data_length huge", line("describe", data_length=10**30), "payload_too_large"),
    ("header a JSON string", b'"describe"\n', "bad_event"),
    ("header a JSON number", b"5\n", "bad_event"),
    ("header null", b"null\n", "bad_event"),
    ("type a number", b'{"type": 5}\n', "bad_event"),
    ("type 65 chars", line("x" * 65), "bad_event"),
    ("header invalid UTF-8", b'{"type": "describe\xff\xfe"}\n', "bad_event"),
    ("header with NUL", b'{"type": "describe"}\x00\n', "bad_event"),
    ("data part not an object", line("describe", data_length=3) + b"[1]", "bad_event"),
    ("data part invalid UTF-8", line("describe", data_length=2) + b"\xff\xfe", "bad_event"),
    ("data part deeply nested", line("describe", data_length=200_000) + b"[" * 100_000 + b"]" * 100_000,
     "bad_event"),
    ("int of 5000 digits", b'{"type": "describe", "data_length": ' + b"9" * 5000 + b"}\n", "bad_event"),
]  # fmt: skip


def test_a_64k_line_without_newline_is_refused_and_the_server_lives(server: tuple[Any, str, int]) -> None:
    state, host, port = server
    closed_with(run(lambda: exchange(host, port, b"{" + b" " * (64 * 1024 + 10))), "payload_too_large")
    alive(state, host, port)


def test_unknown_events_with_payloads_are_skipped_and_the_connection_still_speaks(
    server: tuple[Any, str, int],
) -> None:
    state, host, port = server
    raw = (
        line("select-program", {"name": "x"}, payload_length=1024 * 1024) + bytes(1024 * 1024)
        + line("no-such", data_length=2) + b"{}"
        + line("ping", {"text": "\u00e9\u2603 \U0001f600 \\n"})
        + line("describe")
    )  # fmt: skip
    events = run(lambda: exchange(host, port, raw, until="info"))
    assert [e.type for e in events] == ["pong", "info"]
    assert events[0].data["text"] == "\u00e9\u2603 \U0001f600 \\n"
    alive(state, host, port)


# ---- synthesize ----------------------------------------------------------------------------------


def synth(text: Any, **voice: Any) -> bytes:
    data: dict[str, Any] = {"text": text}
    if voice:
        data["voice"] = voice
    return line("synthesize", data)


SYNTH = [
    ("only spaces", synth("     "), "bad_request"),
    ("over max_input_chars", synth("a" * 20_001), "bad_request"),
    ("lone surrogate", b'{"type": "synthesize", "data": {"text": "\\ud800"}}\n', "bad_request"),
    ("voice ../", synth("Hi.", name="../../etc/passwd"), "unknown_voice"),
    ("voice absolute path", synth("Hi.", name="/etc/passwd"), "unknown_voice"),
    ("voice piper:/etc/passwd", synth("Hi.", name="piper:/etc/passwd"), "unknown_voice"),
    ("voice a whisper model", synth("Hi.", name="whisper:tiny.en"), "unknown_voice"),
    ("voice name 10 kB", synth("Hi.", name="n" * 10_000), "bad_request"),
    ("voice a list", synth("Hi.", name=["a"]), "bad_request"),
    ("voice not an object", line("synthesize", {"text": "Hi.", "voice": "joe"}), "bad_request"),
    ("speaker a float", synth("Hi.", name=VOICE, speaker=0.5), "unknown_speaker"),
    ("speaker a list", synth("Hi.", name=VOICE, speaker=[0]), "unknown_speaker"),
    ("speaker negative", synth("Hi.", name=VOICE, speaker=-1), "unknown_speaker"),
    ("speaker huge int", synth("Hi.", name=VOICE, speaker=10**18), "unknown_speaker"),
    ("speaker a bool", synth("Hi.", name=VOICE, speaker=True), "unknown_speaker"),
    ("speaker unknown name", synth("Hi.", name=VOICE, speaker="nobody"), "unknown_speaker"),
    ("language nobody speaks", synth("Hi.", language="xx_YY"), "unknown_voice"),
]


@pytest.mark.parametrize(("raw", "code"), [w[1:] for w in WIRE + SYNTH], ids=[w[0] for w in WIRE + SYNTH])
def test_malformed_wire_or_request_is_one_error_then_close(server: tuple[Any, str, int], raw: bytes, code: str) -> None:
    _, host, port = server
    closed_with(run(lambda: exchange(host, port, raw)), code)


def test_a_speaker_of_5000_digits_is_an_unknown_speaker(server: tuple[Any, str, int]) -> None:
    state, host, port = server
    closed_with(run(lambda: exchange(host, port, synth("Hi.", name=VOICE, speaker="9" * 5000))), "unknown_speaker")
    alive(state, host, port)


def test_a_long_speaker_name_is_not_echoed_back_whole(server: tuple[Any, str, int]) -> None:
    """voice.speaker has no length limit (name and language do): its error must not echo a megabyte."""
    _, host, port = server
    data = json.dumps({"text": "Hi.", "voice": {"name": VOICE, "speaker": "s" * 500_000}}).encode()
    events = run(lambda: exchange(host, port, line("synthesize", data_length=len(data)) + data))
    closed_with(events, "unknown_speaker")
    assert len(events[0].data["text"]) < 5000


@pytest.mark.parametrize("text", ["a", "\U0001f600\U0001f600\U0001f600", "?!", "1"])
def test_odd_short_texts_speak_or_are_refused_never_internal(server: tuple[Any, str, int], text: str) -> None:
    state, host, port = server
    events = run(lambda: exchange(host, port, synth(text, name=VOICE), until="audio-stop"))
    types = [e.type for e in events]
    if types and types[0] == "error":
        assert events[0].data["code"] == "bad_request", events[0].data
    else:
        assert types[0] == "audio-start" and types[-1] == "audio-stop", types
    alive(state, host, port)


# ---- streamed text -------------------------------------------------------------------------------


def test_chunk_before_start_and_second_start_are_refused(server: tuple[Any, str, int]) -> None:
    state, host, port = server
    closed_with(run(lambda: exchange(host, port, line("synthesize-chunk", {"text": "Hi."}))), "bad_request")
    twice = line("synthesize-start", {"voice": {"name": VOICE}}) * 2
    closed_with(run(lambda: exchange(host, port, twice)), "bad_request")
    alive(state, host, port)


def test_stop_without_start_is_ignored(server: tuple[Any, str, int]) -> None:
    _, host, port = server
    events = run(lambda: exchange(host, port, line("synthesize-stop") + line("describe"), until="info"))
    assert [e.type for e in events] == ["info"]


def test_a_stream_of_one_letter_chunks_stays_fast(server: tuple[Any, str, int]) -> None:
    """19,000 one-letter chunks (under server.max_input_chars): each one re-splits the pending text, which
    must stay bounded (600 characters), so the whole stream is read in seconds, not minutes."""
    state, host, port = server
    words = ("the mill turns " * 2000)[:19_000]
    raw = line("synthesize-start", {"voice": {"name": VOICE}})
    raw += b"".join(line("synthesize-chunk", {"text": c}) for c in words)

    async def go() -> float:
        reader, writer = await asyncio.open_connection(host, port)
        began = time.monotonic()
        writer.write(raw + line("ping", {"text": "done"}))
        await writer.drain()
        while True:  # the pong comes after the last chunk was handled
            event = await asyncio.wait_for(async_read_event(reader), 60)
            assert event is not None and event.type != "error", event
            if event.type == "pong":
                break
        took = time.monotonic() - began
        writer.close()  # leave mid-speech: the stream's place and lease must come back
        return took

    assert run(go, 90) < 20
    settle(state)
    alive(state, host, port)


def test_a_stream_over_the_limit_is_refused_and_gives_its_place_back(server: tuple[Any, str, int]) -> None:
    state, host, port = server
    raw = line("synthesize-start", {"voice": {"name": VOICE}})
    raw += line("synthesize-chunk", {"text": "The mill. " * 1000}) * 3  # 30,000 > 20,000
    events = run(lambda: exchange(host, port, raw))
    assert events and events[-1].type == "error" and events[-1].data["code"] == "bad_request", events[-1:]
    settle(state)
    alive(state, host, port)


def test_leaving_a_stream_mid_audio_gives_its_place_back(server: tuple[Any, str, int]) -> None:
    state, host, port = server

    async def go() -> None:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=VOICE)).event())
            await client.write_event(SynthesizeChunk(text="The mill stood by the river. " * 30).event())
            await client.write_event(SynthesizeStop().event())
            while (event := await client.read_event()) is not None and event.type != "audio-chunk":
                pass

    run(go)
    settle(state)
    alive(state, host, port)


def test_a_stream_whose_first_sentence_is_only_emoji(server: tuple[Any, str, int]) -> None:
    """A streamed sentence with nothing to say, followed by more text: refused or skipped, never internal."""
    state, host, port = server

    async def go() -> list[Event]:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name=VOICE)).event())
            await client.write_event(SynthesizeChunk(text="\U0001f600\U0001f600. ").event())
            await client.write_event(SynthesizeChunk(text="Then the miller spoke. And he left.").event())
            await client.write_event(SynthesizeStop().event())
            events = []
            while (event := await asyncio.wait_for(client.read_event(), 30)) is not None:
                events.append(event)
                if event.type in ("synthesize-stopped", "error"):
                    break
            return events

    events = run(go)
    last = events[-1]
    assert last.type == "synthesize-stopped" or last.data.get("code") == "bad_request", last
    settle(state)
    alive(state, host, port)


# ---- connections that hold on ------------------------------------------------------------------


def test_an_idle_open_stream_does_not_lock_others_out() -> None:
    with served(make_settings(wyoming="tcp://127.0.0.1:0", max_queue=1)) as (_, app):
        state = app.state.voxmill
        host, port = re.fullmatch(r"tcp://([^:]+):(\d+)", state.wyoming_address).groups()  # type: ignore[union-attr]

        async def go() -> None:
            async with AsyncTcpClient(host, int(port)) as holder:
                await holder.write_event(SynthesizeStart(voice=SynthesizeVoice(name=VOICE)).event())
                await holder.write_event(SynthesizeChunk(text="Hi there. And").event())
                while (event := await holder.read_event()) is not None and event.type != "audio-chunk":
                    pass
                await asyncio.sleep(1.0)  # its first sentence spoken; the holder now says nothing more
                assert await speak(host, int(port)) > 0.1

        run(go)


def test_idle_connections_and_a_non_reader_do_not_starve_a_real_client(server: tuple[Any, str, int]) -> None:
    state, host, port = server
    idle = [socket.create_connection((host, port)) for _ in range(30)]
    stuck = socket.create_connection((host, port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        # Never read: its audio fills both socket buffers and the server's write waits on it.
        stuck.sendall(synth("The mill stood by the river. " * 60, name=VOICE))
        time.sleep(1.0)
        began = time.monotonic()
        assert run(lambda: speak(host, port, "The other client is served.")) > 0.5
        assert time.monotonic() - began < 20
    finally:
        for sock in [*idle, stuck]:
            sock.close()
    settle(state)


# ---- transcribe ----------------------------------------------------------------------------------


def audio(kind: str, rate: int = 16000, width: int = 2, channels: int = 1, payload: bytes = b"") -> bytes:
    data = {"rate": rate, "width": width, "channels": channels}
    if kind == "audio-chunk":
        return line(kind, data, payload_length=len(payload)) + payload
    return line(kind, data)


ASR = [
    ("rate 7999", audio("audio-start", 7999), "bad_audio_format"),
    ("rate 192001", audio("audio-start", 192_001), "bad_audio_format"),
    ("width 5", audio("audio-start", width=5), "bad_audio_format"),
    ("channels 9", audio("audio-start", channels=9), "bad_audio_format"),
    ("rate a string", line("audio-start", {"rate": "16000", "width": 2, "channels": 1}), "bad_audio_format"),
    ("rate change", audio("audio-start") + audio("audio-chunk", 22050, payload=bytes(64)), "bad_audio_format"),
    ("partial frame", audio("audio-start", channels=8, width=3) + audio("audio-chunk", channels=8, width=3,
                                                                        payload=bytes(25)), "bad_audio_format"),
    ("a piper voice", line("transcribe", {"name": "piper:" + VOICE}), "unknown_model"),
    ("an unknown model", line("transcribe", {"name": "whisper:nope"}), "unknown_model"),
    ("a path", line("transcribe", {"name": "/etc/passwd"}), "unknown_model"),
    ("another language", line("transcribe", {"language": "de"}), "bad_request"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "code"), [a[1:] for a in ASR], ids=[a[0] for a in ASR])
def test_hostile_transcribe_is_refused_with_its_code(server: tuple[Any, str, int], raw: bytes, code: str) -> None:
    _, host, port = server
    closed_with(run(lambda: exchange(host, port, line("transcribe") + raw)), code)


def test_odd_but_valid_audio_gives_a_transcript(server: tuple[Any, str, int]) -> None:
    """Chunk before audio-start, width 3 x 8 channels at 192 kHz, audio-stop with no audio at all."""
    pytest.importorskip("faster_whisper")
    state, host, port = server
    raw = line("transcribe") + audio("audio-chunk", 192_000, 3, 8, bytes(3 * 8 * 19_200)) + audio("audio-stop")
    raw += line("transcribe") + audio("audio-stop")  # nothing said: an empty transcript
    raw += audio("audio-stop")  # no transcribe, no audio
    events = run(lambda: exchange(host, port, raw, timeout=5))
    assert [e.type for e in events] == ["transcript"] * 3, [(e.type, e.data) for e in events]
    settle(state)
    alive(state, host, port)


# ---- the two-stage cache ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def joe() -> Iterator[tuple[Path, Path, Any, Path]]:
    """The bundled voice's path, a good cached split (a copy), the plain PiperVoice, a scratch cache."""
    import tempfile

    from piper import PiperVoice

    from voxmill.models import Registry
    from voxmill.models.devices import session_options
    from voxmill.models.loaders.vits import load_vits, split_folder

    scratch = Path(tempfile.mkdtemp(prefix="voxmill-attack22-"))
    old = os.environ.get("VOXMILL_CACHE")
    os.environ["VOXMILL_CACHE"] = str(scratch / "cache")
    try:
        spec = Registry(voices_dir=scratch / "none").get("piper:" + VOICE)
        load_vits(spec.path, session_options(1), ["CPUExecutionProvider"])
        good = scratch / "good"
        shutil.copytree(split_folder(spec.path), good)
        assert json.loads((good / "split.json").read_text()).get("cut")
        yield spec.path, good, PiperVoice.load(spec.path), scratch
    finally:
        if old is None:
            os.environ.pop("VOXMILL_CACHE", None)
        else:
            os.environ["VOXMILL_CACHE"] = old
        shutil.rmtree(scratch, ignore_errors=True)


def _speak(voice: Any, text: str) -> np.ndarray:
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    return np.concatenate([c.audio_float_array for c in voice.synthesize(text, config)])


def _edit_meta(f: Path, **changes: Any) -> None:
    meta = json.loads((f / "split.json").read_text())
    meta.update(changes)
    (f / "split.json").write_text(json.dumps(meta))


def _drop_cut(f: Path) -> None:
    meta = json.loads((f / "split.json").read_text())
    del meta["cut"]
    (f / "split.json").write_text(json.dumps(meta))


def _outside(f: Path) -> None:
    secret = f.parent.parent / "outside.onnx"
    shutil.copy(f / "decoder_high.onnx", secret)
    (f / "decoder_high.onnx").unlink()
    (f / "decoder_high.onnx").symlink_to(secret)


def _fifo(f: Path) -> None:
    (f / "decoder_high.onnx").unlink()
    os.mkfifo(f / "decoder_high.onnx")


def _truncate(f: Path) -> None:
    data = (f / "decoder_high.onnx").read_bytes()
    (f / "decoder_high.onnx").write_bytes(data[: len(data) // 2])


def _swap(f: Path) -> None:
    (f / "decoder.onnx").rename(f / "x")
    (f / "decoder_high.onnx").rename(f / "decoder.onnx")
    (f / "x").rename(f / "decoder_high.onnx")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "cut names no tensor": lambda f: _edit_meta(f, cut="/dec/no_such_tensor"),
    "cut a number": lambda f: _edit_meta(f, cut=5),
    "cut key deleted": _drop_cut,
    "high a symlink outside": _outside,
    "high a FIFO": _fifo,
    "high truncated": _truncate,
    "high swapped with decoder": _swap,
    "high missing": lambda f: (f / "decoder_high.onnx").unlink(),
    # The decoder parts' stored probe (hops and reaches): windows sized from a wrong one speak wrong samples.
    "reach of zero hops": lambda f: _edit_meta(f, reach=[0, 13, 0, 8]),
    "reach negative": lambda f: _edit_meta(f, reach=[8, -5, 32, 8]),
    "reach huge": lambda f: _edit_meta(f, reach=[8, 10**9, 32, 8]),
    "reach of strings": lambda f: _edit_meta(f, reach=["8", "13", "32", "8"]),
    "reach of booleans": lambda f: _edit_meta(f, reach=[True, True, True, True]),
    "reach too short": lambda f: _edit_meta(f, reach=[8, 13]),
    "reach an object": lambda f: _edit_meta(f, reach={"low": 8}),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_two_stage_cache_still_speaks_the_voice(
    joe: tuple[Path, Path, Any, Path], damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime

    from voxmill.models.devices import session_options
    from voxmill.models.loaders.vits import load_vits, split_folder

    path, good, plain, scratch = joe
    folder = split_folder(path)
    shutil.rmtree(folder, ignore_errors=True)
    if folder.is_symlink():
        folder.unlink()
    shutil.copytree(good, folder)
    DAMAGE[damage](folder)
    opened: list[str] = []
    real = onnxruntime.InferenceSession

    def recording(source: Any, *args: Any, **kw: Any) -> Any:
        opened.append(os.path.realpath(source) if isinstance(source, (str, os.PathLike)) else "<bytes>")
        return real(source, *args, **kw)

    monkeypatch.setattr(onnxruntime, "InferenceSession", recording)
    session = load_vits(path, session_options(1), ["CPUExecutionProvider"])
    monkeypatch.setattr(onnxruntime, "InferenceSession", real)
    outside = scratch / "outside.onnx"
    assert str(outside.resolve()) not in opened  # the symlink is never followed
    from piper import PiperVoice

    voice = PiperVoice(session=session, config=plain.config)
    text = "The mill stood by the river, and its wheel turned all day long while the miller slept."
    expected, got = _speak(plain, text), _speak(voice, text)
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) < 1e-4
    high = folder / "decoder_high.onnx"
    assert not high.is_symlink() and not (high.exists() and not high.is_file())
