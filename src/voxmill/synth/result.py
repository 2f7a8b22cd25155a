"""``SynthResult``: what one ``synthesize_file`` run wrote, the level it reached, and what its user should know."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill.synth.notes import Loudness, SynthNote
from voxmill.synth.output import ChapterFile

__all__ = ["SynthResult"]


@dataclass
class SynthResult:
    """What one ``synthesize_file`` run wrote. ``loudness``: the level reached (None without a target);
    ``notes``: warnings with a code (text the voice cannot read, a loudness target the peak ceiling
    kept out of reach)."""

    output: Path
    voice: str
    seconds: float
    wall_seconds: float
    pieces: int
    workers: int
    chapters: list[ChapterFile] = field(default_factory=list)
    loudness: Loudness | None = None
    notes: list[SynthNote] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "voice": self.voice,
            "seconds": round(self.seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "x_realtime": round(self.seconds / self.wall_seconds, 2) if self.wall_seconds else None,
            "pieces": self.pieces,
            "workers": self.workers,
            "chapters": [c.to_dict() | {"resumed": c.resumed} for c in self.chapters],
            "loudness": self.loudness.to_dict() if self.loudness else None,
            "notes": [n.to_dict() for n in self.notes],
        }
