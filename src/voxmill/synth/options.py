"""``SynthOptions``: what is spoken, by which voice, how, and where to; the one place its values are checked."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.engine import RunOptions, check_number
from voxmill.text.source import MARKDOWN_SUFFIXES, read_text_file
from voxmill.text.split import Piece

__all__ = ["DEFAULT_VOICE", "SynthOptions", "WRITABLE"]

WRITABLE = (".wav", ".flac", ".ogg", ".mp3")
DEFAULT_VOICE = "piper:en_US-joe-medium"

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
    """What is spoken and how; see ``voxmill synth --help``. Scales None: the voice's own defaults.

    The text is ``text``, or the contents of the file ``input`` (UTF-8, read in bounded blocks).
    ``run``: workers, backend, ... (the engine's :class:`RunOptions`); ``auto`` backend is ``thread``:
    one process whose workers share one voice (onnxruntime runs without the GIL), and ``auto``
    threads per worker is 1 (fastest per core, and the audio does not depend on the worker count).
    """

    text: str | None = None
    input: Path | None = None
    """A .txt or .md file to speak (instead of ``text``); the output may never overwrite it."""
    output: Path = Path("speech.wav")
    """OUT.wav/.flac/.ogg/.mp3, or a folder (no suffix, or ``chapters``): one file per chapter."""
    voice: str | Path = DEFAULT_VOICE
    """``piper:NAME``, ``NAME`` or a path to ``X.onnx`` (next to ``X.onnx.json``)."""
    voices_dir: Path | None = None
    """Where voices are looked for besides installed packages; None: VOXMILL_VOICES_DIR or the default."""
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
    run: RunOptions = field(default_factory=RunOptions)

    def validate(self) -> None:
        """ConfigError naming the first option whose value is out of range (NaN, infinite, absurd)."""
        self.run.validate()
        if self.text is not None and self.input is not None:
            raise errors.ConfigError("give the text or an input file, not both")
        for name in _RANGES:
            value = getattr(self, name)
            if value is not None:
                _check_number(name, value)
        if self.chapter_format.lower() not in WRITABLE:
            raise errors.ConfigError(f"chapter format {self.chapter_format}: use one of {', '.join(WRITABLE)}")

    def read_text(self) -> tuple[str, bool]:
        """(the text to speak, whether it is markdown)."""
        if self.input is not None:
            body = read_text_file(Path(self.input))
            markdown = Path(self.input).suffix.lower() in MARKDOWN_SUFFIXES
        elif self.text is not None:
            body, markdown = self.text, False
        else:
            raise errors.ConfigError("no text: give it as an argument, or -i FILE (-i - for stdin)")
        return body, markdown if self.markdown is None else self.markdown

    def engine_run(self) -> RunOptions:
        """The run options the pool gets: synth's own choices for ``auto`` (see the class docstring)."""
        threads = 1 if self.run.threads_per_worker == "auto" else self.run.threads_per_worker
        return replace(self.run, backend=self.run.backend_or("thread"), threads_per_worker=threads)

    def pause(self, piece: Piece) -> float:
        """Seconds of silence after ``piece``."""
        if piece.seconds is not None:  # asked for by the text's markup
            return piece.seconds
        return {"clause": self.sentence_silence / 2, "sentence": self.sentence_silence,
                "paragraph": self.paragraph_silence}.get(piece.pause, 0.0)  # fmt: skip
