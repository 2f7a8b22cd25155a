"""The per-window work of ``segment``, run in engine workers: a stretch of the recording in, its clips out.

A window (up to 28 s of consecutive clips, from the shared audio: one item, one journal record) has each
of its clips transcribed on its own, then checked by the filters shared with prepare, brought to the
target loudness and staged as ``<stage>/<worker>/<file_id>.<key>.wav``.

Why each clip on its own, not the window once with word timestamps and each word sent back to its clip:
measured on the audiobook of the tests, Whisper's word times (cross-attention DTW) stretch the last words
before a pause over the pause ("on" 2.2-5.0 s, "the river" at 5.2 s, for words said by 2.8 s), so whole
sentence ends went to no clip or to the next one. A clip decoded alone has exactly its own words; without
timestamp tokens, and with an encoder window sized to the clip (:func:`voxmill.models.asr.transcribe_clip`),
it costs less than the window did.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxmill.audio import Audio, normalize, resample, save
from voxmill.corpus import Row
from voxmill.engine import Drop, SharedArray, Task, WorkerContext
from voxmill.engine.filters import ClipFilters, DropCode
from voxmill.models.asr import SAMPLE_RATE, AsrOptions, transcribe_clip
from voxmill.segment.cuts import Piece, Window
from voxmill.text import clean_text

if TYPE_CHECKING:
    from voxmill.models import ModelManager, ModelSpec

__all__ = ["ClipRecord", "SegmentTask", "WindowItem", "WindowResult"]

RECORD_VERSION = "segment-clip/2"  # part of every window's journal id: bump when a clip's making changes
_KEY = re.compile(r"[0-9a-f]{16}")
_WORKER_DIR = re.compile(r"w[0-9]{1,5}")
_STATUSES = ("ok", "dropped")


@dataclass(frozen=True)
class WindowItem:
    """One window as the engine runs it: its audio (mono, at the output rate, from ``window.start``) by
    reference, the ids of its pieces, and ``key``: a digest of the file, the window and the options."""

    source: str
    window: Window
    ids: tuple[str, ...]
    audio: SharedArray
    key: str

    @property
    def journal_id(self) -> str:
        return f"{self.key} {self.source}#{self.window.index}"


@dataclass(frozen=True)
class ClipRecord:
    """What the worker made of one piece: its recognized ``words`` (Whisper's text split at spaces), and
    either a staged clip (``status`` ok) or why it was dropped (``code``, ``reason``)."""

    id: str
    file_id: str
    source: str
    start: float
    end: float
    seconds_out: float
    words: tuple[str, ...]
    status: str
    code: str = ""
    reason: str = ""
    worker_dir: str = ""
    key: str = ""

    @property
    def asr_text(self) -> str:
        return clean_text(" ".join(self.words))

    def staged(self, stage: Path, suffix: str = ".wav") -> Path:
        return stage / self.worker_dir / f"{self.file_id}.{self.key}{suffix}"

    def to_record(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["words"] = list(self.words)
        return data

    @classmethod
    def from_record(cls, data: Any) -> ClipRecord:
        """The record :meth:`to_record` wrote; ValueError/TypeError for anything else (a tampered journal),
        including names that would point outside the worker's staging folder."""
        if not isinstance(data, dict) or set(data) != {f.name for f in dataclasses.fields(cls)}:
            raise ValueError("not a clip record")
        strings = ("id", "file_id", "source", "status", "code", "reason", "worker_dir", "key")
        if not all(isinstance(data[k], str) for k in strings):
            raise TypeError("clip record: a field is not a string")
        if not isinstance(data["words"], list) or not all(isinstance(w, str) for w in data["words"]):
            raise TypeError("clip record: words are not strings")
        for name in ("start", "end", "seconds_out"):
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9:
                raise TypeError(f"clip record: {name} is not a time")
        if data["status"] not in _STATUSES or data["file_id"] != Row(data["id"], "").file_id:
            raise ValueError("clip record: bad status or file name")
        if data["status"] == "ok" and not (_WORKER_DIR.fullmatch(data["worker_dir"]) and _KEY.fullmatch(data["key"])):
            raise ValueError("clip record: bad staging folder or key")
        return cls(**{**data, "words": tuple(data["words"])})


@dataclass(frozen=True)
class WindowResult:
    records: tuple[ClipRecord, ...]

    @property
    def audio_seconds(self) -> float:
        return sum(r.end - r.start for r in self.records)

    def to_record(self) -> list[dict[str, Any]]:
        return [r.to_record() for r in self.records]

    @classmethod
    def from_record(cls, data: Any) -> WindowResult:
        if not isinstance(data, list):
            raise ValueError("not a window record")
        return cls(tuple(ClipRecord.from_record(r) for r in data))


@dataclass
class SegmentTask(Task):
    """Transcribe one window and stage its clips. ``asr``: the Whisper model (resolved in the parent,
    leased from ``ctx.models`` in each worker). ``stage_dir``: where workers stage clips, each in its own
    sub-folder. ``write_wav``/``write_flac``: the staged copies the output layouts need."""

    asr: ModelSpec
    stage_dir: str
    sample_rate: int
    filters: ClipFilters
    language: str | None
    beam_size: int
    loudness: float | None
    peak_ceiling: float
    write_wav: bool = True
    write_flac: bool = False

    requires = (("faster_whisper", "asr"),)

    def setup(self, ctx: WorkerContext) -> None:
        self._worker_dir = f"w{ctx.index}"
        self._stage = Path(self.stage_dir) / self._worker_dir
        self._stage.mkdir(parents=True, exist_ok=True)
        self._models: ModelManager = ctx.models
        # Greedy/beam without the temperature fallback: sampling would make a resumed run's text differ.
        self._asr_options = AsrOptions(
            language=self.language, beam_size=self.beam_size, fallback=False, timestamps=False
        )

    def __call__(self, item: WindowItem) -> WindowResult:
        window = item.window
        samples = np.asarray(item.audio.get(), dtype=np.float32)
        sr = self.sample_rate
        records = []
        with self._models.lease(self.asr) as model:
            for piece, clip_id in zip(window.pieces, item.ids, strict=True):
                lo = round((piece.start - window.start) * sr)
                hi = min(samples.shape[0], round((piece.end - window.start) * sr))
                clip = samples[lo:hi]
                said: tuple[str, ...] = ()
                if clip.shape[0] >= sr // 100:  # under 10 ms there is nothing to hear (and nothing to decode)
                    text = transcribe_clip(model, resample(clip, sr, SAMPLE_RATE), self._asr_options)
                    said = tuple(text.split())
                records.append(self._clip(item, piece, clip_id, said, clip))
        return WindowResult(tuple(records))

    def _clip(
        self, item: WindowItem, piece: Piece, clip_id: str, words: tuple[str, ...], samples: np.ndarray
    ) -> ClipRecord:
        file_id = Row(clip_id, "").file_id
        record = ClipRecord(clip_id, file_id, item.source, round(piece.start, 3), round(piece.end, 3),
                            round(samples.shape[0] / self.sample_rate, 4), words, "ok")  # fmt: skip
        try:
            if not words:
                raise Drop("no words recognized", DropCode.NO_WORDS)
            self.filters.check_level(samples)
            if self.loudness is not None:
                samples = normalize(samples, self.sample_rate, self.loudness, self.peak_ceiling).samples
            self.filters.check_clip(samples, self.sample_rate, record.asr_text)
        except Drop as drop:
            return dataclasses.replace(record, status="dropped", code=str(drop.code or "dropped"), reason=str(drop))
        name = f"{file_id}.{item.key}"
        clip = Audio(np.ascontiguousarray(samples), self.sample_rate)
        if self.write_wav:
            save(self._stage / f"{name}.wav", clip, subtype="PCM_16")
        if self.write_flac:
            save(self._stage / f"{name}.flac", clip, subtype="PCM_16")
        return dataclasses.replace(record, worker_dir=self._worker_dir, key=item.key)
