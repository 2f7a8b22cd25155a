"""Per-clip measurements, made in engine workers: decode once, measure everything ``check`` needs."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from voxmill.audio import integrated_lufs, load
from voxmill.audio.analysis import analyze
from voxmill.corpus import Row
from voxmill.engine import Task, WorkerContext
from voxmill.errors import AudioDecodeError

__all__ = ["AnalyseClip", "ClipStats"]


@dataclass(frozen=True, slots=True)
class ClipStats:
    """One clip as found on disk. ``error`` set means it did not decode (the reason, file named)."""

    id: str
    speaker: str | None
    text: str
    path: str
    sample_rate: int = 0
    channels: int = 0
    subtype: str = ""
    duration: float = 0.0
    speech_seconds: float = 0.0
    peak_dbfs: float = -math.inf
    clipping: float = 0.0
    silence_ratio: float = 0.0
    leading_silence: float = 0.0
    trailing_silence: float = 0.0
    lufs: float = -math.inf
    snr_db: float = math.inf
    phonemes: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class AnalyseClip(Task):
    """Row -> ClipStats. With ``espeak_voice`` the text is phonemized here too (espeak is per-process)."""

    espeak_voice: str | None = None

    def setup(self, ctx: WorkerContext) -> None:
        self._phonemizer: Any = None
        if self.espeak_voice:
            from piper.phonemize_espeak import EspeakPhonemizer

            self._phonemizer = EspeakPhonemizer()

    def audio_seconds(self, item: Row, value: ClipStats) -> float:
        return value.duration

    def __call__(self, row: Row) -> ClipStats:
        phonemes: tuple[str, ...] = ()
        if self._phonemizer is not None and self.espeak_voice and row.text.strip():
            sentences = self._phonemizer.phonemize(self.espeak_voice, row.text)
            phonemes = tuple(p for sentence in sentences for p in sentence)
        base = ClipStats(row.id, row.speaker, row.text, row.audio_path or "", phonemes=phonemes)
        if row.audio_path is None:
            return dataclasses.replace(base, error=row.error or "no audio")
        try:
            audio = load(row.audio_path, mono=True)
        except AudioDecodeError as exc:
            return dataclasses.replace(base, error=str(exc))
        stats = analyze(audio.samples, audio.sample_rate)
        info = audio.source
        return dataclasses.replace(
            base,
            sample_rate=audio.sample_rate,
            channels=info.channels if info else 1,
            subtype=info.codec if info else "",
            duration=stats.duration,
            speech_seconds=max(0.0, stats.duration - stats.leading_silence - stats.trailing_silence),
            peak_dbfs=stats.peak_dbfs,
            clipping=stats.clipping_ratio,
            silence_ratio=stats.silence_ratio,
            leading_silence=stats.leading_silence,
            trailing_silence=stats.trailing_silence,
            lufs=integrated_lufs(audio.samples, audio.sample_rate),
            snr_db=stats.snr_db,
        )
