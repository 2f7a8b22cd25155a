"""``Book``: a text planned for one voice: its chapters, the pieces each is spoken in, what shapes each
chapter's audio (its hash, the key of ``--resume``), and where each chapter's file goes.

A chapter without a letter or digit to say is left out (the voice would give silence); a text with
nothing to say, or only in a script the voice cannot read, is a ConfigError before anything is spoken.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from voxmill import errors
from voxmill.models import ModelSpec
from voxmill.synth.notes import SynthNote, foreign_script_note
from voxmill.synth.options import WRITABLE, SynthOptions
from voxmill.synth.output import chapter_file_name
from voxmill.synth.voice import fingerprint, voice_config
from voxmill.text.split import Chapter, Piece, parse_document, pieces

__all__ = ["Book", "output_suffix"]

# The options that shape a chapter's audio: a change to any of them speaks the chapter again on --resume.
_SHAPING = ("speaker", "length_scale", "noise_scale", "noise_w", "sentence_silence", "paragraph_silence",
            "max_chars", "target_lufs", "peak_ceiling_db")  # fmt: skip


def output_suffix(output: Path, opts: SynthOptions) -> str:
    """The output's audio suffix; ConfigError now (before any synthesis) for one that cannot be written."""
    if opts.chapters:
        if output.suffix.lower() in WRITABLE:
            raise errors.ConfigError(f"{output}: --chapters needs an output folder, not a file")
        return opts.chapter_format.lower()
    suffix = output.suffix.lower()
    if suffix not in WRITABLE:
        raise errors.ConfigError(f"{output}: output format {suffix or '(none)'} not supported; use "
                                 f"{', '.join(WRITABLE)} or --chapters with a folder")  # fmt: skip
    return suffix


def _said(piece: Piece) -> tuple[str, str] | tuple[str, str, float]:
    return (piece.text, piece.pause) if piece.seconds is None else (piece.text, piece.pause, piece.seconds)


@dataclass
class Book:
    """The chapters that have something to say, their pieces and hashes, and notes on the text
    (letters the voice cannot read). ``suffix``: the audio format of the chapter files."""

    voice: ModelSpec
    opts: SynthOptions
    chapters: list[Chapter]
    pieces: list[list[Piece]]
    hashes: list[str]
    notes: list[SynthNote]
    suffix: str = ".wav"

    @classmethod
    def plan(cls, text: str, markdown: bool, voice: ModelSpec, opts: SynthOptions, suffix: str = ".wav") -> Book:
        config = voice_config(voice)
        chapters = parse_document(text, markdown=markdown)
        said = [[p for p in pieces(c, config.language, opts.max_chars) if any(ch.isalnum() for ch in p.text)]
                for c in chapters]  # fmt: skip
        if not any(said):
            raise errors.ConfigError("no text to speak")
        kept = [(c, p) for c, p in zip(chapters, said, strict=True) if p]
        note = foreign_script_note((p.text for _, chapter in kept for p in chapter), voice.name, config.language)
        book = cls(voice, opts, [c for c, _ in kept], [p for _, p in kept], [], [note] if note else [], suffix)
        book.hashes = [book._hash(c) for c in range(len(book.chapters))]
        return book

    @property
    def sample_rate(self) -> int:
        return voice_config(self.voice).sample_rate

    def __len__(self) -> int:
        return len(self.chapters)

    def file_name(self, index: int) -> str:
        """The chapter's own file with ``--chapters``: numbered, so a folder listing plays in order."""
        return chapter_file_name(index, self.chapters[index].title, self.suffix, len(self.chapters))

    def key(self, index: int) -> str:
        """The chapter's name in a journal and among the parts: its place and everything that shapes it."""
        return f"{index:04d}-{self.hashes[index]}"

    def _hash(self, index: int) -> str:
        """Everything that shapes a chapter's audio; unchanged hash = the chapter need not be spoken again."""
        data = {
            "title": self.chapters[index].title,
            "pieces": [_said(p) for p in self.pieces[index]],
            "voice": [self.voice.name, fingerprint(self.voice)],
            "options": {k: getattr(self.opts, k) for k in _SHAPING},
            "suffix": self.suffix,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
