"""What ``voxmill segment`` can be told: :class:`SegmentOptions` (the CLI only fills it in)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from voxmill import errors
from voxmill.corpus.layouts import LAYOUTS
from voxmill.engine import RunOptions, check_number
from voxmill.engine.filters import ClipFilters

__all__ = ["SegmentOptions"]

_LANGUAGE = re.compile(r"[a-z]{2,3}")
MAX_CLIP_SECONDS = 60.0  # past a minute a clip trains nothing well, and a window holds one whole


@dataclass
class SegmentOptions:
    """Long recordings in, a training dataset out. See ``voxmill segment --help``.

    ``inputs``: recordings (any format voxmill.audio reads), in reading order. ``text``: the book they read
    (.txt or .md); None keeps the recognizer's text. ``min_seconds``/``max_seconds``: clip bounds.
    ``asr``: the faster-whisper model (``whisper:tiny.en``). ``language``: what is spoken (None: detect).
    ``max_cer``: with ``text``, clips whose recognized text differs more from their reference text are
    dropped. ``speaker``: every clip's speaker. ``keep_silence``: seconds of pause kept at each clip edge.
    ``break_pause``: a pause at least this long always ends a clip. ``beam_size``: Whisper's beam (1:
    greedy; measured on clean speech: the same words, half the time). ``val_fraction``: clips held out for
    validation (``metadata_val.csv``; seeded, as prepare's split). ``filters``: duration, clipping,
    SNR and speaking-rate filters shared with prepare (their duration bounds are set from min/max seconds).
    """

    inputs: list[Path]
    out: Path
    text: Path | None = None
    formats: list[str] = field(default_factory=lambda: ["piper"])
    min_seconds: float = 1.0
    max_seconds: float = 15.0
    asr: str = "whisper:tiny.en"
    language: str | None = "en"
    max_cer: float = 0.1
    speaker: str | None = None
    sample_rate: int = 22050
    loudness: float | None = -23.0
    peak_ceiling: float = -1.0
    keep_silence: float = 0.25
    break_pause: float = 2.0
    beam_size: int = 1
    espeak_voice: str | None = None
    val_fraction: float | None = None
    filters: ClipFilters = field(default_factory=lambda: ClipFilters(min_chars_per_second=3.0,
                                                                     max_chars_per_second=30.0))  # fmt: skip
    resume: bool = False
    overwrite: bool = False
    run: RunOptions = field(default_factory=RunOptions)

    def validate(self) -> None:
        """Raise ConfigError naming the first option out of its range (NaN is out of every range)."""
        self.run.validate()
        if not self.inputs:
            raise errors.ConfigError("no recordings given")
        unknown = [f for f in self.formats if f not in LAYOUTS]
        if unknown or not self.formats:
            raise errors.ConfigError(f"--format: unknown {', '.join(unknown) or '(none)'}; use {', '.join(LAYOUTS)}")
        check_number("--min-seconds", self.min_seconds, 0.0, MAX_CLIP_SECONDS)
        check_number("--max-seconds", self.max_seconds, 0.5, MAX_CLIP_SECONDS)
        if self.max_seconds <= self.min_seconds:
            raise errors.ConfigError(
                f"--max-seconds {self.max_seconds:g}: must be above --min-seconds ({self.min_seconds:g})"
            )
        check_number("--max-cer", self.max_cer, 0.0, math.inf)
        check_number("--sample-rate", self.sample_rate, 8000, 192000, integer=True)
        if self.loudness is not None:
            check_number("--loudness", self.loudness, -70, 0)
        check_number("peak ceiling", self.peak_ceiling, -60, 0)
        check_number("--keep-silence", self.keep_silence, 0.0, min(2.0, self.max_seconds / 4))
        check_number("--break-pause", self.break_pause, 0.1, 3600.0)
        check_number("--beam-size", self.beam_size, 1, 20, integer=True)
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:  # also refuses NaN
            raise errors.ConfigError(f"--val-fraction {self.val_fraction:g}: must be at least 0 and below 1")
        if self.language is not None and not _LANGUAGE.fullmatch(self.language):
            raise errors.ConfigError(f"--language {self.language[:20]!r}: expected a code such as 'en'")
        if self.speaker is not None and (not self.speaker.strip() or len(self.speaker) > 200
                                         or any(c in self.speaker for c in "|\n\r\t")):  # fmt: skip
            raise errors.ConfigError("--speaker: a name of 1-200 characters without '|', tabs or line breaks")
        self.clip_filters().validate("--min-seconds", "--max-seconds")
        if self.resume and self.overwrite:
            raise errors.ConfigError("--resume and --overwrite: give one of them, not both")

    def clip_filters(self) -> ClipFilters:
        """The filters with this run's clip bounds and whether Piper's floor applies."""
        from dataclasses import replace

        return replace(self.filters, min_duration=self.min_seconds, max_duration=self.max_seconds,
                       for_piper="piper" in self.formats)  # fmt: skip

    @property
    def espeak(self) -> str:
        """The espeak-ng voice the Piper config names: the one given, else the language's (English: en-us)."""
        if self.espeak_voice:
            return self.espeak_voice
        return "en-us" if self.language in (None, "en") else str(self.language)
