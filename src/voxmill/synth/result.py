"""``SynthResult``: what a synth run wrote, the level it reached, its plan, and what its user should know."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill.engine import ThreadPlan
from voxmill.synth.notes import Loudness, SynthNote
from voxmill.synth.output import ChapterFile

__all__ = ["SynthResult"]


@dataclass
class SynthResult:
    """What one ``voxmill.synth.run`` wrote. ``pieces``: the pieces spoken now (not those resumed);
    ``plan``: the workers they were spoken on (None when everything was resumed); ``loudness``: the
    level reached (None without a target); ``notes``: warnings with a code (text the voice cannot read,
    a loudness target the peak ceiling kept out of reach)."""

    output: Path
    voice: str
    seconds: float
    wall_seconds: float
    pieces: int
    plan: ThreadPlan | None = None
    chapters: list[ChapterFile] = field(default_factory=list)
    loudness: Loudness | None = None
    notes: list[SynthNote] = field(default_factory=list)

    @property
    def x_realtime(self) -> float | None:
        return round(self.seconds / self.wall_seconds, 2) if self.wall_seconds else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "voice": self.voice,
            "seconds": round(self.seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "x_realtime": self.x_realtime,
            "pieces": self.pieces,
            "workers": self.plan.workers if self.plan else 0,
            "plan": self.plan.describe() if self.plan else None,
            "chapters": [c.to_dict() | {"resumed": c.resumed} for c in self.chapters],
            "loudness": self.loudness.to_dict() if self.loudness else None,
            "notes": [n.to_dict() for n in self.notes],
        }
