"""Everything the checks look at, gathered once: metadata rows, per-clip stats, the Piper config."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill.check.stats import ClipStats
from voxmill.corpus import Row

__all__ = ["CheckData"]


@dataclass
class CheckData:
    dataset: Path
    folder: Path
    layout: str
    rows: list[Row]
    clips: list[ClipStats] = field(default_factory=list)
    config: dict[str, Any] | None = None
    config_path: Path | None = None
    config_error: str | None = None
    espeak_voice: str | None = None

    @property
    def good(self) -> list[ClipStats]:
        """Clips that decoded."""
        return [c for c in self.clips if c.error is None]

    @property
    def speakers(self) -> list[str]:
        return sorted({r.speaker for r in self.rows if r.error is None and r.speaker})
