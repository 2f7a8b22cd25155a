"""Speech to text with a leased faster-whisper model: typed results and their subtitle renderings.

``transcribe(model, samples16k, options) -> Transcript`` wraps ``WhisperModel.transcribe`` (34 keyword
arguments, a lazy generator of segments) in one options dataclass and one eager call: the generator is
consumed here, on the caller's thread, so the decoding runs where the caller scheduled it and not
wherever the result happens to be iterated. ``to_srt`` / ``to_vtt`` render one cue per segment.

Why no subtitle library: both formats are a numbered (SRT) or headed (WebVTT) list of
``start --> end`` cues; pysubs2 and srt would add a dependency for a dozen lines of formatting.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxmill import errors
from voxmill.audio import blocks

__all__ = [
    "MAX_PROMPT_CHARS",
    "SAMPLE_RATE",
    "AsrOptions",
    "Segment",
    "Stopped",
    "Transcript",
    "Word",
    "load_audio",
    "to_srt",
    "to_vtt",
    "transcribe",
    "transcribe_clip",
]

SAMPLE_RATE = 16000
# Whisper keeps the last 223 prompt tokens (half its text context); about 4 characters a token.
MAX_PROMPT_CHARS = 1000
# OpenAI's meaning of temperature 0: start greedy, raise the temperature when a window's decode fails.
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_LANGUAGE = re.compile(r"[a-z]{2,3}")


class Stopped(Exception):
    """``transcribe`` stopped between two windows because its ``stop`` said so (a client that left)."""


@dataclass(frozen=True)
class Word:
    """One word and where it is said, in seconds. ``word`` keeps Whisper's leading space (joining the
    words gives the text back, in languages written with and without spaces)."""

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One decoded stretch of speech (Whisper's unit; a subtitle cue)."""

    id: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    seek: int = 0
    tokens: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Transcript:
    """What was said: the whole ``text``, the ``language`` code, the audio's ``duration`` (seconds)."""

    text: str
    language: str
    duration: float
    segments: list[Segment] = field(default_factory=list)

    @property
    def words(self) -> list[Word]:
        return [word for segment in self.segments for word in segment.words]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AsrOptions:
    """How to transcribe. Defaults: detect the language, no prompt, OpenAI's temperature schedule."""

    language: str | None = None
    """A language code as Whisper writes it (``en``, ``haw``); None detects it (English-only models: ``en``)."""
    prompt: str | None = None
    """Text that precedes the audio: spellings, names, style (Whisper's ``initial_prompt``)."""
    temperature: float = 0.0
    """0: greedy, raised step by step when a window fails; above 0 (up to 1): sample at that temperature."""
    words: bool = False
    """Word timestamps (aligned by cross-attention after each window is decoded)."""
    beam_size: int = 5
    fallback: bool = True
    """With temperature 0: raise the temperature where a window's decode fails (sampling: results vary
    from run to run). False keeps every window greedy/beam, so the same audio always gives the same text."""
    timestamps: bool = True
    """Segment timestamps (Whisper's timestamp tokens); False decodes text only (faster, one segment per
    30-s window), for callers that only want the words of a short clip."""
    vad: bool = False
    """Skip the silences Silero VAD finds before decoding (long recordings with long pauses)."""

    def checked(self) -> AsrOptions:
        """These options, or ConfigError naming the field at fault."""
        if self.language is not None and not _LANGUAGE.fullmatch(self.language):
            raise errors.ConfigError(f"language: expected a code such as 'en', got {self.language[:20]!r}")
        if self.prompt is not None and len(self.prompt) > MAX_PROMPT_CHARS:
            raise errors.ConfigError(f"prompt: {len(self.prompt)} characters; the limit is {MAX_PROMPT_CHARS}")
        if not (isinstance(self.temperature, (int, float)) and 0.0 <= self.temperature <= 1.0):
            raise errors.ConfigError(f"temperature: expected a number from 0 to 1, got {self.temperature!r}")
        if not (isinstance(self.beam_size, int) and 1 <= self.beam_size <= 20):
            raise errors.ConfigError(f"beam_size: expected 1 to 20, got {self.beam_size!r}")
        return self


def load_audio(path: str | Path, max_seconds: float = math.inf) -> np.ndarray:
    """``path`` (any format voxmill.audio reads) as mono float32 samples at 16 kHz, decoded block by block:
    AudioDecodeError for what cannot be decoded, AudioError once it passes ``max_seconds`` (a few MB
    of a low-bitrate codec can hold hours, more than the memory they decode to should be spent on)."""
    limit = max_seconds * SAMPLE_RATE
    parts: list[np.ndarray] = []
    frames = 0
    for block in blocks(path, seconds=30.0, sr=SAMPLE_RATE, mono=True):
        frames += block.samples.shape[0]
        if frames > limit:
            raise errors.AudioError(f"{path}: more than {max_seconds:g} s of audio; the limit is {max_seconds:g} s")
        parts.append(block.samples)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def transcribe(
    model: Any, samples16k: np.ndarray, options: AsrOptions | None = None, stop: Callable[[], bool] | None = None
) -> Transcript:
    """Transcribe mono float32 ``samples16k`` (16 kHz) with a faster-whisper ``WhisperModel``.

    Blocking: the whole decode runs in this call. ConfigError for options the model cannot honour
    (a language an English-only model does not speak), AudioDecodeError for empty or non-finite audio.
    ``stop`` is asked after each segment: when it says True, :class:`Stopped` is raised (an hour of audio
    is minutes of decoding that nobody should wait for once its caller has gone).
    """
    opts = (options or AsrOptions()).checked()
    samples = np.asarray(samples16k, dtype=np.float32)
    if samples.ndim != 1:
        raise errors.AudioDecodeError("audio", f"expected mono samples, got shape {samples.shape}")
    if samples.size == 0:
        raise errors.AudioDecodeError("audio", "no audio frames", errors.Reason.EMPTY)
    if not math.isfinite(float(samples.sum())) and not np.isfinite(samples).all():
        raise errors.AudioDecodeError("audio", "contains non-finite samples (NaN or inf)", errors.Reason.NON_FINITE)
    _check_language(model, opts.language)
    temperature: float | tuple[float, ...] = opts.temperature or (FALLBACK_TEMPERATURES if opts.fallback else 0.0)
    if stop is not None and stop():
        raise Stopped("stopped before the first window")
    pieces, info = model.transcribe(
        samples,
        language=opts.language,
        initial_prompt=opts.prompt or None,
        temperature=temperature,
        word_timestamps=opts.words,
        without_timestamps=not opts.timestamps,
        beam_size=opts.beam_size,
        vad_filter=opts.vad,
    )
    segments = []
    for index, piece in enumerate(pieces):  # the lazy decode runs here, a window at a time
        segments.append(_segment(index, piece))
        if stop is not None and stop():
            pieces.close()
            raise Stopped(f"stopped after {piece.end:.1f} s of {info.duration:.1f} s")
    text = "".join(s.text for s in segments).strip()
    return Transcript(text, str(info.language), float(info.duration), segments)


# A clip is encoded in a window of its own length plus 2 s, and at least 15 s: with less, Whisper tiny
# looped on short headings ("Chapter 1, The Valley Chapter 1, The Valley ...") in 1 clip of 41.
CLIP_MARGIN_FRAMES = 200
MIN_CLIP_FRAMES = 1500
MAX_COMPRESSION = 2.4  # faster-whisper's sign of a decode that repeats itself
FRAMES_PER_WINDOW = 3000  # Whisper's 30-s window in 10-ms mel frames
MAX_CLIP_TOKENS = 448


def _check_language(model: Any, language: str | None) -> None:
    supported = list(getattr(model, "supported_languages", None) or [])
    if language is not None and supported and language not in supported:
        known = "the model is English-only" if supported == ["en"] else "not a language the model knows"
        raise errors.ConfigError(f"language {language!r}: {known}")


def transcribe_clip(model: Any, samples16k: np.ndarray, options: AsrOptions | None = None) -> str:
    """The text of one short clip (at most 30 s, mono float32 at 16 kHz): one greedy/beam decode, no
    timestamps, no temperature fallback, so the same audio always gives the same text.

    Why not :func:`transcribe`: faster-whisper pads every clip to Whisper's 30-s window, and the encoder
    costs the same for a 3-s clip as for 30 s of speech (measured: 0.6 s per encode on one core, 75% of
    the time of a dataset's clips). CTranslate2's encoder takes shorter input, so the clip goes in with
    2 s of padding (the zero frames faster-whisper pads with), at least 15 s in all: 2.25x faster over
    the clips of the segment tests' audiobook, the same words on every clip. A text that repeats itself
    all the same (zlib compression ratio above 2.4, faster-whisper's test) is decoded again in the full
    window, and a clip too long for its margin in one window (over 28 s) takes faster-whisper's own path.
    """
    import ctranslate2
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

    opts = (options or AsrOptions()).checked()
    samples = np.asarray(samples16k, dtype=np.float32)
    _check_language(model, opts.language)
    multilingual = bool(model.model.is_multilingual)
    frames = samples.shape[0] // 160 + CLIP_MARGIN_FRAMES if samples.ndim == 1 else FRAMES_PER_WINDOW + 1
    if frames > FRAMES_PER_WINDOW or (multilingual and opts.language is None):
        # No room for the margin in one window (a 29-s clip decoded without timestamps came back as "The"),
        # or a language to detect first: faster-whisper's own path, with timestamps, does both.
        return transcribe(model, samples, dataclasses.replace(opts, fallback=False, timestamps=True)).text
    if samples.size == 0:
        raise errors.AudioDecodeError("audio", "no audio frames", errors.Reason.EMPTY)
    features = model.feature_extractor(samples)[:, :FRAMES_PER_WINDOW]
    frames = min(FRAMES_PER_WINDOW, max(MIN_CLIP_FRAMES, features.shape[1] + CLIP_MARGIN_FRAMES))
    frames += frames % 2  # the encoder's convolution halves the frames
    padded = np.zeros((1, features.shape[0], frames), dtype=np.float32)
    padded[0, :, : features.shape[1]] = features
    tokenizer = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language=opts.language or "en")
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]  # options.prompt is not used here
    encoded = model.model.encode(ctranslate2.StorageView.from_array(padded), to_cpu=False)
    result = model.model.generate(
        encoded,
        [prompt],
        beam_size=opts.beam_size,
        max_length=MAX_CLIP_TOKENS,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
    )[0]
    text = tokenizer.decode([t for t in result.sequences_ids[0] if t < tokenizer.eot]).strip()
    if text and get_compression_ratio(text) > MAX_COMPRESSION:
        return transcribe(model, samples, dataclasses.replace(opts, fallback=False, timestamps=False)).text
    return text


def _segment(index: int, piece: Any) -> Segment:
    words = [Word(float(w.start), float(w.end), str(w.word), float(w.probability)) for w in piece.words or ()]
    return Segment(
        id=index,
        start=float(piece.start),
        end=float(piece.end),
        text=str(piece.text),
        words=words,
        avg_logprob=float(piece.avg_logprob),
        no_speech_prob=float(piece.no_speech_prob),
        compression_ratio=float(piece.compression_ratio),
        temperature=float(piece.temperature or 0.0),
        seek=int(piece.seek),
        tokens=[int(t) for t in piece.tokens],
    )


# ---- subtitles ------------------------------------------------------------------------------------


def _timestamp(seconds: float, separator: str) -> str:
    ms = max(0, round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{separator}{ms % 1000:03d}"


def _cues(transcript: Transcript) -> list[tuple[float, float, str]]:
    # One line per cue: a blank line inside a cue's text would end the cue early in both formats.
    cues = [(s.start, max(s.start, s.end), " ".join(s.text.split())) for s in transcript.segments]
    return [cue for cue in cues if cue[2]]


def to_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``, one per segment."""
    return "".join(
        f"{n}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n{text.replace('-->', '->')}\n\n"
        for n, (start, end, text) in enumerate(_cues(transcript), start=1)
    )


def to_vtt(transcript: Transcript) -> str:
    """WebVTT: the ``WEBVTT`` header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` cues, one per segment."""
    cues = "".join(
        f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{_vtt_text(text)}\n\n"
        for start, end, text in _cues(transcript)
    )
    return f"WEBVTT\n\n{cues}"


def _vtt_text(text: str) -> str:
    # Cue text is markup: a bare '<' or '&' starts a tag or an entity, and '-->' may not appear at all.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
