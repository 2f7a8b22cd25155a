"""``SynthOptions``: how text is spoken and written, and the one place its values are checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voxmill import errors
from voxmill.engine import RunOptions, check_number
from voxmill.text.split import Piece

__all__ = ["BACKENDS", "SynthOptions", "WRITABLE"]

WRITABLE = (".wav", ".flac", ".ogg", ".mp3")
BACKENDS = ("process", "thread", "ray")

# (low, high, low included) for each number a user can give. Beyond these a value is a typo or an
# attack, not a reading: a 1e12-second pause once asked numpy for 78 PiB; NaN slipped through every check.
_RANGES: dict[str, tuple[float, float, bool]] = {
    "length_scale": (0.0, 10.0, False),
    "noise_scale": (0.0, 5.0, True),
    "noise_w": (0.0, 5.0, True),
    "sentence_silence": (0.0, 60.0, True),
    "paragraph_silence": (0.0, 60.0, True),
    "chapter_silence": (0.0, 600.0, True),
    "max_chars": (20, 5000, True),
    "target_lufs": (-70.0, 0.0, True),
    "peak_ceiling_db": (-60.0, 0.0, True),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_number(name: str, value: Any) -> None:
    low, high, low_included = _RANGES[name]
    check_number(_flag(name), value, low, high, integer=name == "max_chars", low_open=not low_included)


@dataclass
class SynthOptions:
    """How text is spoken and written; see ``voxmill synth --help``. Scales None: the voice's own defaults."""

    speaker: int | str | None = None
    """Speaker id or name, for multi-speaker voices."""
    length_scale: float | None = None
    noise_scale: float | None = None
    noise_w: float | None = None
    sentence_silence: float = 0.2
    """Seconds of silence after each sentence (half of it where an over-long sentence was cut)."""
    paragraph_silence: float = 0.6
    chapter_silence: float = 1.5
    """Between chapters in a single output file."""
    max_chars: int = 300
    """Sentences longer than this are cut at clause boundaries (words longer than this, inside the word)."""
    markdown: bool | None = None
    """Parse the text as markdown; None: by the input file's suffix (.md)."""
    target_lufs: float | None = -23.0
    """Integrated loudness of the whole output (EBU R 128), one gain for all of it; None keeps the voice's level.

    Lowered where the peak would pass ``peak_ceiling_db``: Piper voices peak ~22 dB above their loudness;
    the result says so (``SynthResult.loudness``)."""
    peak_ceiling_db: float = -1.0
    chapters: bool = False
    """One file per chapter in the output folder, plus chapters.json."""
    chapter_format: str = ".wav"
    """The chapter files' format with ``chapters``."""
    srt: bool = False
    resume: bool = False
    """Chapters whose text, voice and parameters are unchanged are not synthesized again."""
    overwrite: bool = False
    """An output folder an earlier run left is replaced (only the files that run wrote are removed)."""
    workers: int | str = "auto"
    backend: str = "thread"
    ray_address: str | None = None  # backend "ray": the cluster to join; None starts a local Ray
    """thread: one process, the voice loaded once and shared by the workers (onnxruntime runs without
    the GIL); process: a voice per worker process."""
    progress: bool | None = None

    def validate(self) -> None:
        """ConfigError naming the first option whose value is out of range (NaN, infinite, absurd)."""
        RunOptions(self.workers, self.backend, self.ray_address, progress=self.progress).validate(BACKENDS)
        for name in _RANGES:
            value = getattr(self, name)
            if value is not None:
                _check_number(name, value)
        if self.chapter_format.lower() not in WRITABLE:
            raise errors.ConfigError(f"chapter format {self.chapter_format}: use one of {', '.join(WRITABLE)}")

    def pause(self, piece: Piece) -> float:
        """Seconds of silence after ``piece``."""
        if piece.seconds is not None:  # asked for by the text's markup
            return piece.seconds
        return {"clause": self.sentence_silence / 2, "sentence": self.sentence_silence,
                "paragraph": self.paragraph_silence}.get(piece.pause, 0.0)  # fmt: skip
