"""voxmill.models.asr: real Piper speech through real whisper tiny.en; the subtitle renderers; load_audio."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("faster_whisper")

from make_demo_audio import SENTENCES

from voxmill import errors
from voxmill.audio import Audio, resample, save
from voxmill.models.asr import (
    MAX_PROMPT_CHARS,
    SAMPLE_RATE,
    AsrOptions,
    Segment,
    Transcript,
    Word,
    load_audio,
    to_srt,
    to_vtt,
    transcribe,
    transcribe_clip,
)

SRT_CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d{3}) --> (\d\d):(\d\d):(\d\d),(\d{3})\n([^\n]+)")
VTT_CUE = re.compile(r"(\d\d):(\d\d):(\d\d)\.(\d{3}) --> (\d\d):(\d\d):(\d\d)\.(\d{3})\n([^\n]+)")


def wer(reference: str, hypothesis: str) -> float:
    import jiwer

    def norm(text: str) -> str:
        return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split())

    return float(jiwer.wer(norm(reference), norm(hypothesis)))


@pytest.fixture(scope="module")
def whisper() -> Iterator[Any]:
    from voxmill.models import ModelManager, Registry

    spec = Registry().resolve("whisper:tiny.en", kind="whisper")
    manager = ModelManager(threads=2)
    with manager.lease(spec) as model:
        yield model
    manager.close()


@pytest.fixture(scope="module")
def speech16k(speech: Audio) -> np.ndarray:
    return resample(speech.samples, speech.sample_rate, SAMPLE_RATE)


def test_transcribe_real_speech_with_words(whisper: Any, speech16k: np.ndarray) -> None:
    transcript = transcribe(whisper, speech16k, AsrOptions(language="en", words=True))
    assert wer(" ".join(SENTENCES), transcript.text) < 0.2, transcript.text
    assert transcript.language == "en"
    assert transcript.duration == pytest.approx(speech16k.size / SAMPLE_RATE, abs=0.01)
    assert [s.id for s in transcript.segments] == list(range(len(transcript.segments)))
    words = transcript.words
    assert len(words) >= 30
    assert all(0 <= w.start <= w.end <= transcript.duration + 0.05 for w in words)
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    assert "".join(w.word for w in words).strip() == transcript.text
    assert all(0 <= w.probability <= 1 for w in words)
    segment = transcript.segments[0]
    assert segment.tokens and segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1
    assert transcript.to_dict()["segments"][0]["words"][0]["word"] == words[0].word


def test_transcribe_without_words_and_with_prompt(whisper: Any, speech16k: np.ndarray) -> None:
    first = speech16k[: int(4.2 * SAMPLE_RATE)]
    padded = np.concatenate([np.zeros(2 * SAMPLE_RATE, np.float32), first])  # VAD skips the silence
    options = AsrOptions(prompt="Voxmill is a voice workbench.", temperature=0.3, vad=True, beam_size=1)
    transcript = transcribe(whisper, padded, options)
    assert transcript.segments and not transcript.words
    assert "turns raw recordings" in transcript.text.lower()
    assert transcript.segments[0].start >= 1.5 and transcript.duration == pytest.approx(6.2, abs=0.01)


def test_transcribe_refuses_what_the_model_cannot_do(whisper: Any, speech16k: np.ndarray) -> None:
    with pytest.raises(errors.ConfigError, match="English-only"):
        transcribe(whisper, speech16k[:16000], AsrOptions(language="fr"))
    with pytest.raises(errors.AudioDecodeError, match="no audio frames"):
        transcribe(whisper, np.zeros(0, np.float32))
    with pytest.raises(errors.AudioDecodeError, match="mono"):
        transcribe(whisper, np.zeros((100, 2), np.float32))
    with pytest.raises(errors.AudioDecodeError, match="non-finite"):
        transcribe(whisper, np.full(1600, np.nan, np.float32))


def test_transcribe_clip_says_what_the_full_window_says(whisper: Any, speech16k: np.ndarray) -> None:
    # The encoder window sized to the clip gives the words of faster-whisper's 30-s window, deterministically;
    # past 28 s the clip goes through transcribe with timestamps (several windows).
    options = AsrOptions(language="en", beam_size=1, fallback=False, timestamps=False)
    clip = speech16k[: int(6 * SAMPLE_RATE)]
    short = transcribe_clip(whisper, clip, options)
    assert wer(transcribe(whisper, clip, options).text, short) <= 0.05 and "turns raw recordings" in short.lower()
    assert transcribe_clip(whisper, clip, options) == short
    long = np.concatenate([speech16k] * (1 + int(31 * SAMPLE_RATE) // speech16k.shape[0]))
    timed = AsrOptions(language="en", beam_size=1, fallback=False, timestamps=True)  # the path it takes past 28 s
    assert wer(transcribe(whisper, long, timed).text, transcribe_clip(whisper, long, options)) == 0.0
    with pytest.raises(errors.ConfigError, match="English-only"):
        transcribe_clip(whisper, clip, AsrOptions(language="fr"))
    with pytest.raises(errors.AudioDecodeError, match="no audio frames"):
        transcribe_clip(whisper, np.zeros(0, np.float32))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        (AsrOptions(language="english"), "language"),
        (AsrOptions(language="e1"), "language"),
        (AsrOptions(prompt="x" * (MAX_PROMPT_CHARS + 1)), "prompt"),
        (AsrOptions(temperature=1.5), "temperature"),
        (AsrOptions(temperature=float("nan")), "temperature"),
        (AsrOptions(beam_size=0), "beam_size"),
    ],
)
def test_options_checked(options: AsrOptions, field: str) -> None:
    with pytest.raises(errors.ConfigError, match=f"^{field}:"):
        options.checked()


def _transcript(*texts: str, start: float = 0.0) -> Transcript:
    segments = [
        Segment(i, start + 2 * i, start + 2 * i + 1.5, text, [Word(start + 2 * i, start + 2 * i + 1, text, 0.9)])
        for i, text in enumerate(texts)
    ]
    return Transcript("".join(texts).strip(), "en", start + 2 * len(texts), segments)


def test_srt_and_vtt_structure() -> None:
    # A cue past an hour, a blank segment (dropped), text that would break either format if copied as is.
    transcript = _transcript(" Hello there.", "  ", " a --> b <i>&", " two\n\nlines", start=3599.0)
    srt = to_srt(transcript)
    cues = SRT_CUE.findall(srt)
    assert [c[0] for c in cues] == ["1", "2", "3"]
    assert srt == "".join(m.group(0) + "\n\n" for m in SRT_CUE.finditer(srt))
    assert cues[0][1:5] == ("00", "59", "59", "000") and cues[0][5:9] == ("01", "00", "00", "500")
    assert cues[1][9] == "a -> b <i>&" and cues[2][9] == "two lines"
    vtt = to_vtt(transcript)
    assert vtt.startswith("WEBVTT\n\n")
    vtt_cues = VTT_CUE.findall(vtt)
    assert len(vtt_cues) == 3 and vtt_cues[1][8] == "a --&gt; b &lt;i&gt;&amp;"
    assert vtt == "WEBVTT\n\n" + "".join(m.group(0) + "\n\n" for m in VTT_CUE.finditer(vtt))
    assert to_srt(_transcript()) == "" and to_vtt(_transcript()) == "WEBVTT\n\n"


def test_load_audio_formats_and_limits(tmp_path: Path, short_speech: Audio) -> None:
    stereo = Audio(np.stack([short_speech.samples, short_speech.samples], axis=1), short_speech.sample_rate)
    for name in ("s.wav", "s.flac", "s.mp3", "s.ogg"):
        samples = load_audio(save(tmp_path / name, stereo))
        assert samples.ndim == 1 and samples.dtype == np.float32
        expected = short_speech.samples.size / short_speech.sample_rate
        assert samples.size / SAMPLE_RATE == pytest.approx(expected, abs=0.1)
    with pytest.raises(errors.AudioError, match="the limit is 1 s"):
        load_audio(tmp_path / "s.wav", max_seconds=1)
    garbage = tmp_path / "g.wav"
    garbage.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    with pytest.raises(errors.AudioDecodeError):
        load_audio(garbage)
    (tmp_path / "e.wav").write_bytes(b"")
    with pytest.raises(errors.AudioDecodeError, match="empty"):
        load_audio(tmp_path / "e.wav")
