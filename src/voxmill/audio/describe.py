"""One file's summary for ``voxmill info``: container facts plus level, loudness and speech measures."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from voxmill.audio.analysis import analyze
from voxmill.audio.io import load
from voxmill.audio.loudness import integrated_lufs
from voxmill.audio.vad import speech_ratio

__all__ = ["FileReport", "describe"]


@dataclass(frozen=True)
class FileReport:
    """What ``voxmill info`` shows for one file. Percentages are 0-100; levels in dBFS/LUFS."""

    path: str
    format: str
    codec: str
    sample_rate: int
    channels: int
    duration: float
    peak_dbfs: float
    lufs: float
    clipping_pct: float
    silence_pct: float
    speech_pct: float | None

    def to_dict(self) -> dict[str, Any]:
        # JSON has no -inf: digital silence has no level, written as null.
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def describe(path: str | Path, vad: bool = True) -> FileReport:
    """Decode ``path`` and measure it; raises AudioDecodeError for a damaged file."""
    audio = load(path, mono=False)
    info = audio.source
    if info is None:  # load() always sets it; this keeps the type checker honest
        raise RuntimeError("load() returned audio without source info")
    mono = audio.to_mono().samples
    stats = analyze(mono, audio.sample_rate)
    return FileReport(
        path=str(path),
        format=info.format,
        codec=info.codec,
        sample_rate=info.sample_rate,
        channels=info.channels,
        duration=audio.duration,
        peak_dbfs=stats.peak_dbfs,
        lufs=integrated_lufs(audio.samples, audio.sample_rate),
        clipping_pct=100 * stats.clipping_ratio,
        silence_pct=100 * stats.silence_ratio,
        speech_pct=100 * speech_ratio(mono, audio.sample_rate) if vad else None,
    )
