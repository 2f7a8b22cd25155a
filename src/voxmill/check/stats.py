"""Per-clip measurements, made in engine workers: decode once, measure everything ``check`` needs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from voxmill.audio import integrated_lufs, load
from voxmill.audio.analysis import analyze
from voxmill.corpus import Row
from voxmill.corpus.rows import Split
from voxmill.engine import Task, WorkerContext
from voxmill.errors import AudioDecodeError, Reason
from voxmill.text.phonemes import Phonemizer, UnknownVoiceError

__all__ = ["AnalyseClip", "ClipStats"]


@dataclass(frozen=True, slots=True)
class ClipStats:
    """One clip as found on disk. ``error`` set means it did not decode: ``error`` is the line for the
    user (the file named), ``code`` its kind (:class:`~voxmill.errors.Reason`), which the checks group by."""

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
    phonemes: str = ""  # one code point per phoneme, as Piper's phoneme_id_map keys them
    phoneme_error: str | None = None
    error: str | None = None
    code: Reason | None = None  # set with ``error``
    split: Split = Split.TRAIN  # a Piper folder's metadata_val.csv rows are VALIDATION

    @classmethod
    def failed(
        cls, row: Row, error: str, code: Reason, phonemes: str = "", phoneme_error: str | None = None
    ) -> ClipStats:
        """A clip that could not be measured, and why."""
        return cls(row.id, row.speaker, row.text, row.audio_path or "", phonemes=phonemes, error=error, code=code,
                   phoneme_error=phoneme_error, split=row.split)  # fmt: skip


@dataclass
class AnalyseClip(Task):
    """Row -> ClipStats. With ``espeak_voice`` the text is phonemized here too (espeak is per-process)."""

    espeak_voice: str | None = None

    def setup(self, ctx: WorkerContext) -> None:
        self._phonemizer: Phonemizer | None = None
        self._voice_error: str | None = None
        if self.espeak_voice:
            try:
                self._phonemizer = Phonemizer(self.espeak_voice)
            except UnknownVoiceError as exc:
                # Reported once by the text check; the audio is still measured.
                self._voice_error = str(exc)

    def audio_seconds(self, item: Row, value: ClipStats) -> float:
        return value.duration

    def __call__(self, row: Row) -> ClipStats:
        phonemes = ""
        if self._phonemizer is not None and row.text.strip():
            phonemes = "".join(self._phonemizer.sentences(row.text))
        path = row.audio_path or ""
        if row.audio_path is None:
            return ClipStats.failed(row, row.error or "no audio", Reason.MISSING, phonemes, self._voice_error)
        try:
            audio = load(row.audio_path, mono=True)
        except AudioDecodeError as exc:
            return ClipStats.failed(row, str(exc), exc.code, phonemes, self._voice_error)
        stats = analyze(audio.samples, audio.sample_rate)
        info = audio.source
        # A clip silent throughout is all leading silence: counted at one end, not both (it is not
        # 7200 s + 7200 s of edge silence in a 7200 s clip), so speech = duration - edges holds.
        leading = min(stats.leading_silence, stats.duration)
        trailing = min(stats.trailing_silence, stats.duration - leading)
        return ClipStats(
            row.id,
            row.speaker,
            row.text,
            path,
            sample_rate=audio.sample_rate,
            channels=info.channels if info else 1,
            subtype=info.codec if info else "",
            duration=stats.duration,
            speech_seconds=max(0.0, stats.duration - leading - trailing),
            peak_dbfs=stats.peak_dbfs,
            clipping=stats.clipping_ratio,
            silence_ratio=stats.silence_ratio,
            leading_silence=leading,
            trailing_silence=trailing,
            lufs=integrated_lufs(audio.samples, audio.sample_rate),
            snr_db=stats.snr_db,
            phonemes=phonemes,
            phoneme_error=self._voice_error,
            split=row.split,
        )
