"""POST /v1/audio/transcriptions on a real server, with the official openai client and raw httpx: real Piper
speech through whisper tiny.en, every response_format, word timestamps, bad uploads and overload."""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("faster_whisper")
pytest.importorskip("openai")

import httpx
import openai
from make_demo_audio import SENTENCES
from tests.serving import make_settings, served

from voxmill import errors
from voxmill.audio import Audio, save
from voxmill.server.scheduler import Busy

ROUTE = "/v1/audio/transcriptions"
FOX = SENTENCES[2]
SRT_CUE = re.compile(r"(\d+)\n(\d\d:\d\d:\d\d,\d{3}) --> (\d\d:\d\d:\d\d,\d{3})\n([^\n]+)\n\n")
VTT_CUE = re.compile(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n([^\n]+)\n\n")


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split())

    return float(jiwer.wer(norm(reference), norm(hypothesis)))


def seconds(stamp: str) -> float:
    h, m, s = stamp.replace(",", ".").split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def audio_seconds(metrics: str) -> float:
    counted = re.search(r'voxmill_audio_seconds_total\{kind="whisper",model="whisper:tiny.en"\} ([0-9.e+]+)', metrics)
    return float(counted.group(1)) if counted else 0.0


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    # max_queue 1: the overload test fills the one whisper place itself.
    with served(make_settings(max_queue=1)) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: tuple[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="x", max_retries=0)


@pytest.fixture(scope="module")
def speech_wav(speech: Audio, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 13 s of the three demo sentences, Piper (noise 0), 22.05 kHz WAV."""
    return save(tmp_path_factory.mktemp("asr") / "speech.wav", speech)


@pytest.fixture(scope="module")
def fox(synth: Callable[[str], Audio]) -> Audio:
    """One plain sentence (no coined words for tiny.en to stumble on), about 4 s."""
    return synth(FOX)


@pytest.fixture(scope="module")
def short_wav(fox: Audio, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return save(tmp_path_factory.mktemp("asr") / "short.wav", fox).read_bytes()


def post(url: str, **kw: Any) -> httpx.Response:
    return httpx.post(f"{url}{ROUTE}", timeout=60, **kw)


def test_verbose_json_with_word_timestamps(
    server: tuple[str, Any], client: openai.OpenAI, speech_wav: Path, speech: Audio
) -> None:
    before = audio_seconds(httpx.get(f"{server[0]}/metrics").text)
    with speech_wav.open("rb") as f:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=f, response_format="verbose_json", timestamp_granularities=["word", "segment"]
        )
    assert wer(" ".join(SENTENCES), result.text) < 0.2, result.text
    duration = speech.samples.shape[0] / speech.sample_rate
    assert result.language == "en" and result.duration == pytest.approx(duration, abs=0.01)
    words = result.words or []
    assert len(words) >= 30 and all(w.word == w.word.strip() and w.word for w in words)
    assert all(0 <= w.start <= w.end <= duration + 0.05 for w in words)
    assert all(a.start <= b.start and a.end <= b.end for a, b in itertools.pairwise(words))
    segments = result.segments or []
    assert len(segments) >= 2 and segments[-1].end <= duration + 0.05
    assert all(a.end <= b.start + 1e-6 for a, b in itertools.pairwise(segments))
    assert " ".join(s.text.strip() for s in segments) == result.text
    assert all(s.tokens and isinstance(s.avg_logprob, float) for s in segments)
    # The request is labelled with the model the alias resolved to, and its audio seconds are counted.
    metrics = httpx.get(f"{server[0]}/metrics").text
    assert audio_seconds(metrics) - before == pytest.approx(duration, abs=0.01)
    assert re.search(
        r'voxmill_requests_total\{[^}]*model="whisper:tiny.en"[^}]*route="/v1/audio/transcriptions"', metrics
    )


def test_every_response_format(client: openai.OpenAI, short_wav: bytes) -> None:
    def ask(fmt: str, **kw: Any) -> Any:
        return client.audio.transcriptions.create(model="whisper-1", file=("s.wav", short_wav), response_format=fmt,
                                                  **kw)  # fmt: skip

    text = ask("json").text
    assert wer(FOX, text) < 0.3, text
    assert ask("text") == text + "\n"
    srt = ask("srt")
    cues = SRT_CUE.findall(srt)
    assert cues and "".join(m.group(0) for m in SRT_CUE.finditer(srt)) == srt
    assert [int(c[0]) for c in cues] == list(range(1, len(cues) + 1))
    assert all(seconds(c[1]) <= seconds(c[2]) for c in cues) and " ".join(c[3] for c in cues) == text
    vtt = ask("vtt")
    assert vtt.startswith("WEBVTT\n\n")
    vtt_cues = VTT_CUE.findall(vtt)
    assert "WEBVTT\n\n" + "".join(m.group(0) for m in VTT_CUE.finditer(vtt)) == vtt
    assert [(seconds(a), seconds(b)) for a, b, _ in vtt_cues] == [(seconds(c[1]), seconds(c[2])) for c in cues]
    verbose = ask("verbose_json")  # segment granularity by default: no words
    assert verbose.text == text and verbose.segments and not verbose.words


def test_other_formats_and_non_ascii_names(server: tuple[str, Any], fox: Audio, tmp_path: Path) -> None:
    url = server[0]
    for name in ("speech.mp3", "speech.flac", "speech.ogg"):
        data = save(tmp_path / name, fox).read_bytes()
        for upload in (f"Запись «{name}» 音声.{name.split('.')[-1]}", "no-suffix"):
            response = post(url, files={"file": (upload, data)}, data={"model": "whisper:tiny.en"})
            assert response.status_code == 200, response.text
            assert wer(FOX, response.json()["text"]) < 0.3


def test_round_trip_of_the_servers_own_speech(client: openai.OpenAI) -> None:
    text = FOX
    try:
        spoken = client.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="wav")
    except openai.APIStatusError as exc:
        if exc.status_code in (404, 501):
            pytest.skip(f"POST /v1/audio/speech answers {exc.status_code}: the speech endpoint is not there yet")
        raise
    result = client.audio.transcriptions.create(
        model="whisper-1", file=("speech.wav", spoken.content), response_format="verbose_json",
        timestamp_granularities=["word"],
    )  # fmt: skip
    assert wer(text, result.text) < 0.2, result.text
    words = result.words or []
    assert words and all(a.start <= b.start for a, b in itertools.pairwise(words))


@pytest.mark.parametrize(
    ("fields", "status", "param"),
    [
        ({"model": "whisper:tiny"}, 404, None),
        ({"model": "../../etc/passwd"}, 404, None),
        ({"model": "piper:en_US-joe-medium"}, 404, None),
        ({"language": "fr"}, 400, "language"),
        ({"language": "english"}, 400, "language"),
        ({"temperature": "2"}, 400, "temperature"),
        ({"temperature": "hot"}, 400, "temperature"),
        ({"prompt": "p" * 5000}, 400, "prompt"),
        ({"response_format": "diarized_json"}, 400, "response_format"),
        ({"timestamp_granularities[]": "char"}, 400, "timestamp_granularities[]"),
        ({"keep_alive": "forever"}, 400, None),
        ({"stream": "true"}, 400, "stream"),
    ],
)
def test_bad_fields(server: tuple[str, Any], short_wav: bytes, fields: dict[str, str], status: int,
                    param: str | None) -> None:  # fmt: skip
    response = post(server[0], files={"file": ("s.wav", short_wav)}, data={"model": "whisper-1", **fields})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and "\n" not in error["message"] and (param is None or error["param"] == param)
    if fields.get("model") == "whisper:tiny":
        assert "whisper:tiny.en" in error["message"]  # the close match


def test_bad_uploads(server: tuple[str, Any], short_wav: bytes) -> None:
    url = server[0]
    cases: list[tuple[str, dict[str, Any]]] = [
        ("garbage", {"files": {"file": ("x.wav", b"RIFF" + bytes(range(256)) * 8)}}),
        ("text", {"files": {"file": ("notes.mp3", b"hello, this is not audio at all\n" * 20)}}),
        ("truncated wav", {"files": {"file": ("x.wav", short_wav[: len(short_wav) // 3])}}),
        ("empty", {"files": {"file": ("x.wav", b"")}}),
        ("no file", {"data": {"model": "whisper-1"}}),
        ("file as a text field", {"data": {"model": "whisper-1", "file": "abc"}}),
        ("json body", {"json": {"model": "whisper-1", "file": "abc"}}),
    ]
    for what, kw in cases:
        kw.setdefault("data", {"model": "whisper-1"})
        response = post(url, **kw)
        assert response.status_code == 400, (what, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and "/tmp" not in error["message"], (what, error)
    assert post(url, files={"file": ("x.wav", b"")}, data={"model": "whisper-1"}).json()["error"]["code"] == "empty"


def test_malformed_multipart(server: tuple[str, Any], short_wav: bytes) -> None:
    head = (b'--XX\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
            b'--XX\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n')  # fmt: skip
    whole = head + short_wav + b"\r\n--XX--\r\n"
    bodies = {
        "cut in the file": head + short_wav[:5000],
        "cut in the headers": whole[:60],
        "no closing boundary": head + short_wav + b"\r\n",
        "garbage": b"\x00\xff" * 100,
        "part without a name": b"--XX\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XX--\r\n",
    }
    multipart = {"content-type": "multipart/form-data; boundary=XX"}
    for what, body in bodies.items():
        response = post(server[0], content=body, headers=multipart)
        assert 400 <= response.status_code < 500 and response.json()["error"]["message"], (what, response.text)
    no_boundary = post(server[0], content=whole, headers={"content-type": "multipart/form-data"})
    assert no_boundary.status_code == 400


def test_busy_answers_503(server: tuple[str, Any], short_wav: bytes) -> None:
    url, app = server
    with app.state.voxmill.scheduler.admit("whisper"):  # the server's one whisper place (max_queue 1)
        response = post(url, files={"file": ("s.wav", short_wav)}, data={"model": "whisper-1"})
    assert response.status_code == 503 and int(response.headers["retry-after"]) > 0
    assert response.json()["error"]["type"] == "server_busy"
    assert post(url, files={"file": ("s.wav", short_wav)}, data={"model": "whisper-1"}).status_code == 200


def test_event_loop_stays_free_and_keep_alive_zero(server: tuple[str, Any], speech_wav: Path) -> None:
    url, app = server
    manager = app.state.voxmill.manager
    data = speech_wav.read_bytes()
    done: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: done.append(
        post(url, files={"file": ("s.wav", data)}, data={"model": "whisper-1", "keep_alive": "0"})))  # fmt: skip
    worker.start()
    slowest = 0.0
    answered = 0
    while worker.is_alive():
        start = time.monotonic()
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        slowest = max(slowest, time.monotonic() - start)
        answered += worker.is_alive()
        time.sleep(0.05)
    worker.join()
    assert done[0].status_code == 200 and wer(" ".join(SENTENCES), done[0].json()["text"]) < 0.2
    # A loop blocked by the transcription (~2 s here) would answer once, after it; a busy machine may
    # slow an answer, not stop them.
    assert answered >= 3 and slowest < 1.5, f"{answered} /healthz answers, slowest {slowest:.2f} s"
    assert "whisper:tiny.en" not in {m.name for m in manager.status()}  # keep_alive 0: unloaded after


def test_transcribe_file_for_the_ui(server: tuple[str, Any], speech_wav: Path) -> None:
    from voxmill.server.transcription import transcribe_file

    transcript = transcribe_file(server[1].state.voxmill, speech_wav, language="en")
    assert wer(" ".join(SENTENCES), transcript.text) < 0.2
    assert transcript.words and transcript.words[-1].end <= transcript.duration + 0.05
    with pytest.raises(errors.AudioDecodeError):
        transcribe_file(server[1].state.voxmill, speech_wav.with_name("missing.wav"))
    with pytest.raises(errors.ConfigError, match="only transcribes 'en'"):
        transcribe_file(server[1].state.voxmill, speech_wav, language="de")
    with server[1].state.voxmill.scheduler.admit("whisper"), pytest.raises(Busy):
        transcribe_file(server[1].state.voxmill, speech_wav)
