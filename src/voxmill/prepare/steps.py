"""The per-clip work of ``prepare``, run in engine workers: one Row in, one Clip (or Drop/failure) out."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxmill import errors
from voxmill.audio import Audio, load, normalize, resample, save, speech_segments
from voxmill.corpus import Row
from voxmill.engine import Drop, Task, WorkerContext, check_number
from voxmill.engine.filters import ClipFilters, DropCode
from voxmill.text import clean_text
from voxmill.text.phonemes import Phonemizer

if TYPE_CHECKING:
    from voxmill.models import ModelManager, ModelSpec

__all__ = ["BadRow", "Clip", "ClipOptions", "DropCode", "PrepareItem", "PrepareTask"]

RECORD_VERSION = "prepare-clip/2"  # bump when a Clip record or the per-clip processing changes meaning
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")
_WORKER_DIR = re.compile(r"w[0-9]{1,5}")


class BadRow(errors.DatasetError):
    """The source row itself is unusable; its reader said why (``Row.problem``, the code reports use)."""


@dataclass(frozen=True)
class ClipOptions:
    """What happens to each clip (``PrepareOptions.clip``). See ``voxmill prepare --help``.

    ``sample_rate``: output rate. ``trim``: cut leading/trailing non-speech (Silero VAD), keeping
    ``keep_silence`` seconds of it. ``loudness``: target LUFS (None leaves levels), under a
    ``peak_ceiling`` in dBFS. Clips shorter than ``min_duration`` or longer than ``max_duration``
    seconds (after trimming), or with more than ``max_clipping`` of their samples at full scale, are
    dropped; so are clips with an SNR estimate below ``min_snr_db``, or a speaking rate (characters of
    the cleaned text per second) below ``min_chars_per_second`` or above ``max_chars_per_second``
    (None: no such filter). ``espeak_voice``: phonemize every text with this espeak-ng voice.
    """

    sample_rate: int = 22050
    trim: bool = True
    keep_silence: float = 0.25
    loudness: float | None = -23.0
    peak_ceiling: float = -1.0
    min_duration: float = 0.0
    max_duration: float = 30.0
    max_clipping: float = 0.001
    espeak_voice: str | None = None
    min_snr_db: float | None = None
    min_chars_per_second: float | None = None
    max_chars_per_second: float | None = None

    def validate(self) -> None:
        """Raise ConfigError naming the option and its allowed range for any value out of range."""
        check_number("--sample-rate", self.sample_rate, 8000, 192000, integer=True)
        check_number("--keep-silence", self.keep_silence, 0, 60)
        if self.loudness is not None:
            check_number("--loudness", self.loudness, -70, 0)
        check_number("peak ceiling", self.peak_ceiling, -60, 0)
        self.filters(for_piper=False).validate()

    def filters(self, for_piper: bool) -> ClipFilters:
        """The clip filters these options set (``for_piper``: Piper's training window too)."""
        return ClipFilters(
            min_duration=self.min_duration,
            max_duration=self.max_duration,
            max_clipping=self.max_clipping,
            for_piper=for_piper,
            min_snr_db=self.min_snr_db,
            min_chars_per_second=self.min_chars_per_second,
            max_chars_per_second=self.max_chars_per_second,
        )


@dataclass(frozen=True)
class PrepareItem:
    """One row as the engine runs it. ``fingerprint`` covers everything that decides the clip: the
    row's content, the identity of its audio (path, size, mtime, ctime, inode; or the bytes) and the options."""

    row: Row
    fingerprint: str

    @classmethod
    def of(cls, row: Row, digest: str) -> PrepareItem:
        h = hashlib.blake2b(digest.encode(), digest_size=8)
        content = [row.id, row.text, row.speaker, sorted(row.labels.items()), row.error, row.audio_path]
        h.update(json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if row.audio_path is not None:
            try:
                st = os.stat(row.audio_path)
                # ctime too: bytes rewritten in place with the size kept and the mtime set back
                # (``touch -r``) change it, and no user can set it.
                h.update(f"|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}".encode())
            except OSError as exc:
                h.update(f"|missing {exc.errno}".encode())
        if row.audio_bytes is not None:
            h.update(b"|bytes|")
            h.update(row.audio_bytes)
        return cls(row, h.hexdigest())

    @property
    def key(self) -> str:
        """The journal id: a changed row or option gives another id, so the row runs again."""
        return f"{self.fingerprint} {self.row.id}"


@dataclass(frozen=True, slots=True)
class Clip:
    """A prepared clip, staged as ``<stage_dir>/<worker_dir>/<file_id>.<fingerprint>.wav`` (and ``.flac``
    for hf): the fingerprint in the name keeps the clips of other options or row contents apart."""

    id: str
    file_id: str
    source: str
    text: str
    speaker: str | None
    labels: dict[str, str]
    seconds_in: float
    seconds_out: float
    phonemes: str | None = None
    unknown_phonemes: tuple[str, ...] = ()
    worker_dir: str = ""
    fingerprint: str = ""

    def staged(self, stage: Path, suffix: str = ".wav") -> Path:
        """Where the worker staged this clip's file."""
        return stage / self.worker_dir / f"{self.file_id}.{self.fingerprint}{suffix}"

    def to_record(self) -> dict[str, Any]:
        """Plain data for the journal (JSON; never code)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_record(cls, data: Any) -> Clip:
        """The Clip a journal record describes; ValueError/TypeError for anything else (a tampered or
        foreign record), including names that would point outside the worker's staging folder."""
        if not isinstance(data, dict) or set(data) != {f.name for f in dataclasses.fields(cls)}:
            raise ValueError("not a clip record")
        strings = ("id", "file_id", "source", "text", "worker_dir", "fingerprint")
        if not all(isinstance(data[k], str) for k in strings):
            raise TypeError("clip record: a field is not a string")
        for key in ("speaker", "phonemes"):
            if data[key] is not None and not isinstance(data[key], str):
                raise TypeError(f"clip record: {key} is not a string")
        labels, unknown = data["labels"], data["unknown_phonemes"]
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise TypeError("clip record: labels are not strings")
        if not isinstance(unknown, list) or not all(isinstance(p, str) for p in unknown):
            raise TypeError("clip record: unknown phonemes are not strings")
        for key in ("seconds_in", "seconds_out"):
            if isinstance(data[key], bool) or not isinstance(data[key], int | float) or not data[key] >= 0:
                raise TypeError(f"clip record: {key} is not a duration")
        # The names must be the ones this program derives: nothing else can leave the staging folder.
        if data["file_id"] != Row(data["id"], "").file_id:
            raise ValueError("clip record: file name does not belong to the id")
        if not _WORKER_DIR.fullmatch(data["worker_dir"]) or not _FINGERPRINT.fullmatch(data["fingerprint"]):
            raise ValueError("clip record: bad staging folder or fingerprint")
        return cls(**{**data, "labels": dict(labels), "unknown_phonemes": tuple(unknown)})

    @property
    def audio_seconds(self) -> float:
        return self.seconds_in


@dataclass
class PrepareTask(Task):
    """Decode, check, resample, trim, normalize, phonemize and stage one row's clip.

    ``stage_dir``: where workers stage clips (each in its own sub-folder). ``for_piper``: refuse clips
    shorter than Piper's training window; ``write_wav`` / ``write_flac``: the staged copies the outputs
    need. ``vad``: the Silero model (resolved in the parent) each trim leases from ``ctx.models``.
    """

    clip: ClipOptions
    stage_dir: str
    for_piper: bool = True
    write_wav: bool = True
    write_flac: bool = False
    vad: ModelSpec | None = None

    @property
    def digest(self) -> str:
        """What shapes every clip (all but where it is staged and which file holds the VAD), as one
        stable string: part of each row's journal id, so other options re-run the row."""
        shaping = {
            **dataclasses.asdict(self.clip),
            "for_piper": self.for_piper,
            "write_wav": self.write_wav,
            "write_flac": self.write_flac,
        }
        return json.dumps([RECORD_VERSION, shaping], sort_keys=True)

    def preflight(self) -> None:
        if self.clip.trim and self.vad is None:
            raise errors.ConfigError("trimming needs the Silero VAD model: resolve it into PrepareTask.vad")

    def setup(self, ctx: WorkerContext) -> None:
        # Each worker stages into its own folder: creating and renaming files in one shared folder
        # serializes the workers on the folder's lock (measured: 10% slower on 2 cores).
        self._worker_dir = f"w{ctx.index}"
        self._stage = Path(self.stage_dir) / self._worker_dir
        self._stage.mkdir(parents=True, exist_ok=True)
        self._models: ModelManager | None = ctx.models if self.clip.trim else None
        self._filters = self.clip.filters(self.for_piper)
        self._phonemizer: Phonemizer | None = None
        self._known: set[str] = set()
        if self.clip.espeak_voice:
            from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

            self._phonemizer = Phonemizer(self.clip.espeak_voice)
            self._known = set(DEFAULT_PHONEME_ID_MAP)

    def __call__(self, item: PrepareItem) -> Clip:
        opts = self.clip
        row = item.row
        if row.error:
            raise BadRow(row.error)
        text = clean_text(row.text)
        if not text:
            raise Drop("empty text", DropCode.EMPTY_TEXT)
        audio = _decode(row)
        seconds_in = audio.duration
        samples = audio.samples
        self._filters.check_level(samples)
        if audio.sample_rate != opts.sample_rate:
            samples = resample(samples, audio.sample_rate, opts.sample_rate)
        if opts.trim:
            samples = self._trim(samples)
        seconds = samples.shape[0] / opts.sample_rate
        self._filters.check_clip(samples, opts.sample_rate, text)
        if opts.loudness is not None:
            samples = normalize(samples, opts.sample_rate, opts.loudness, opts.peak_ceiling).samples
        phonemes, unknown = self._phonemize(text)
        name = f"{row.file_id}.{item.fingerprint}"
        if self.write_wav:
            save(self._stage / f"{name}.wav", Audio(samples, opts.sample_rate), subtype="PCM_16")
        if self.write_flac:
            save(self._stage / f"{name}.flac", Audio(samples, opts.sample_rate), subtype="PCM_16")
        return Clip(
            row.id,
            row.file_id,
            row.source,
            text,
            row.speaker,
            dict(row.labels),
            seconds_in,
            seconds,
            phonemes,
            unknown,
            self._worker_dir,
            item.fingerprint,
        )

    def _trim(self, samples: np.ndarray) -> np.ndarray:
        """Cut leading/trailing non-speech (Silero VAD), keeping ``keep_silence`` seconds of it on each side."""
        if self._models is None or self.vad is None:
            raise RuntimeError("PrepareTask: trim without a VAD model (setup not run?)")
        sr = self.clip.sample_rate
        with self._models.lease(self.vad) as detector:
            segments = speech_segments(samples, sr, detector=detector)
        if not segments:
            raise Drop("no speech found (VAD)", DropCode.NO_SPEECH)
        pad = int(self.clip.keep_silence * sr)
        start = max(0, segments[0].start - pad)
        end = min(samples.shape[0], segments[-1].end + pad)
        return np.ascontiguousarray(samples[start:end])

    def _phonemize(self, text: str) -> tuple[str | None, tuple[str, ...]]:
        if self._phonemizer is None:
            return None, ()
        flat = "".join(self._phonemizer.sentences(text))
        unknown = tuple(sorted({p for p in flat if p not in self._known}))
        return flat, unknown


def _decode(row: Row) -> Audio:
    """Mono float32 at the file's own rate; parquet bytes go through a temp file (decoders want paths)."""
    if row.audio_path is not None:
        return load(row.audio_path, mono=True)
    if row.audio_bytes is None:
        raise BadRow("row has no audio")
    fd, name = tempfile.mkstemp(prefix="voxmill-", suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(row.audio_bytes)
        return load(name, mono=True)
    finally:
        os.unlink(name)
