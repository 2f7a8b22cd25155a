"""What ``convert`` reports: one :class:`FileResult` per input, and the run's :class:`ConvertResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill.engine import Failed, ThreadPlan
from voxmill.errors import Reason

__all__ = ["ConvertResult", "ConvertedFile", "FileResult", "KeptChunk"]


@dataclass(frozen=True)
class KeptChunk:
    """A chunk the processor failed on twice: its original audio is in the output instead."""

    index: int
    at_seconds: float
    code: Reason
    message: str


@dataclass
class ConvertedFile:
    """What converting one file did.

    ``channels`` is the output's; fewer than ``input_channels`` only for a processor that makes one
    channel (``mixed_to_mono``). ``limited_frames``/``peak_reduction_db``: what the output limiter did
    to keep the processor's overshoot under the ceiling. ``resumed_chunks``: chunks an earlier run had
    finished (``resume``), not processed again. ``plan``: the workers the chunks ran on.
    """

    input: Path
    output: Path
    seconds: float
    sample_rate: int
    chunks: int
    silent_chunks: int
    plan: ThreadPlan | None
    wall_seconds: float
    joins: list[int] = field(default_factory=list)
    kept_original: list[KeptChunk] = field(default_factory=list)
    channels: int = 1
    input_channels: int = 1
    limited_frames: int = 0
    peak_reduction_db: float = 0.0
    resumed_chunks: int = 0

    @property
    def mixed_to_mono(self) -> bool:
        return self.channels < self.input_channels

    @property
    def x_realtime(self) -> float | None:
        return round(self.seconds / self.wall_seconds, 2) if self.wall_seconds else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "output": str(self.output),
            "seconds": round(self.seconds, 3),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "input_channels": self.input_channels,
            "chunks": self.chunks,
            "silent_chunks": self.silent_chunks,
            "resumed_chunks": self.resumed_chunks,
            "backend": self.plan.backend if self.plan else None,
            "workers": self.plan.workers if self.plan else 0,
            "wall_seconds": round(self.wall_seconds, 3),
            "x_realtime": self.x_realtime,
            "limited_frames": self.limited_frames,
            "peak_reduction_db": round(self.peak_reduction_db, 2),
            "kept_original": [
                {"chunk": k.index, "at_seconds": round(k.at_seconds, 2), "code": str(k.code), "reason": k.message}
                for k in self.kept_original
            ],
        }


@dataclass(frozen=True)
class FileResult:
    """One input: ``converted`` when its output was written, else ``failed`` (a Reason code and the
    one-line message: unreadable input, an output another run holds, a chunk failed with ``strict``)."""

    input: Path
    output: Path
    converted: ConvertedFile | None = None
    failed: Failed | None = None

    @property
    def ok(self) -> bool:
        return self.converted is not None

    def to_dict(self) -> dict[str, Any]:
        if self.converted is not None:
            return self.converted.to_dict()
        code, message = (str(self.failed.code), self.failed.message) if self.failed else (None, None)
        return {"input": str(self.input), "output": str(self.output), "code": code, "error": message}


@dataclass
class ConvertResult:
    """A run of :func:`voxmill.convert.run`: one :class:`FileResult` per input, in input order (a bad
    input does not end the run), and the plan the chunks ran on (the last converted file's)."""

    files: list[FileResult]
    plan: ThreadPlan | None
    wall_seconds: float

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    @property
    def converted(self) -> list[ConvertedFile]:
        return [f.converted for f in self.files if f.converted is not None]

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if f.failed is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": [f.to_dict() for f in self.files],
            "plan": self.plan.describe() if self.plan else None,
            "wall_seconds": round(self.wall_seconds, 3),
        }
