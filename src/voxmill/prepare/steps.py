"""The per-clip work of ``prepare``, run in engine workers: one Row in, one Clip (or Drop/failure) out."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxmill.audio import Audio, load, normalize, resample, save, speech_segments
from voxmill.audio.analysis import CLIP_LEVEL
from voxmill.corpus import PIPER_SEGMENT_SAMPLES, Row, piper_min_seconds
from voxmill.engine import Drop, Task, WorkerContext
from voxmill.text import clean_text
from voxmill.text.phonemes import Phonemizer

__all__ = ["Clip", "ClipOptions", "PrepareTask"]

SILENT_PEAK = 10 ** (-60 / 20)  # a clip whose loudest sample is below -60 dBFS holds no usable speech


@dataclass(frozen=True)
class ClipOptions:
    """What happens to each clip. See ``voxmill prepare --help`` for the user-facing side."""

    stage_dir: str
    sample_rate: int = 22050
    trim: bool = True
    keep_silence: float = 0.25
    loudness: float | None = -23.0
    peak_ceiling: float = -1.0
    min_duration: float = 0.0
    max_duration: float = 30.0
    max_clipping: float = 0.001
    for_piper: bool = True
    espeak_voice: str | None = None
    write_flac: bool = False


@dataclass(frozen=True, slots=True)
class Clip:
    """A prepared clip, staged as ``<stage_dir>/<worker_dir>/<file_id>.wav`` (and ``.flac`` for hf)."""

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

    def staged(self, stage: Path, suffix: str = ".wav") -> Path:
        """Where the worker staged this clip's file."""
        return stage / self.worker_dir / f"{self.file_id}{suffix}"

    @property
    def audio_seconds(self) -> float:
        return self.seconds_in


@dataclass
class PrepareTask(Task):
    options: ClipOptions

    def setup(self, ctx: WorkerContext) -> None:
        # Each worker stages into its own folder: creating and renaming files in one shared folder
        # serializes the workers on the folder's lock (measured: 10% slower on 2 cores).
        self._worker_dir = f"w{ctx.index}"
        self._stage = Path(self.options.stage_dir) / self._worker_dir
        self._stage.mkdir(parents=True, exist_ok=True)
        self._phonemizer: Phonemizer | None = None
        self._known: set[str] = set()
        if self.options.espeak_voice:
            from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

            self._phonemizer = Phonemizer(self.options.espeak_voice)
            self._known = set(DEFAULT_PHONEME_ID_MAP)

    def __call__(self, row: Row) -> Clip:
        opts = self.options
        if row.error:
            raise ValueError(row.error)
        text = clean_text(row.text)
        if not text:
            raise Drop("empty text")
        audio = _decode(row)
        seconds_in = audio.duration
        samples = audio.samples
        # Only peak and clipping matter here; the full analyze() (percentiles, frames) is 10x the cost.
        # max/min need no temporary |x| array, and clipped samples are only counted when the peak is there.
        peak = max(float(samples.max()), -float(samples.min()))
        if peak >= CLIP_LEVEL:
            clipping = float(np.count_nonzero(np.abs(samples) >= CLIP_LEVEL)) / samples.shape[0]
            if clipping > opts.max_clipping:
                raise Drop(f"clipping: {clipping:.2%} of samples at full scale")
        if peak < SILENT_PEAK:
            raise Drop("silent: peak below -60 dBFS")
        if audio.sample_rate != opts.sample_rate:
            samples = resample(samples, audio.sample_rate, opts.sample_rate)
        if opts.trim:
            samples = _trim(samples, opts.sample_rate, opts.keep_silence)
        seconds = samples.shape[0] / opts.sample_rate
        if opts.for_piper and samples.shape[0] < PIPER_SEGMENT_SAMPLES:
            raise Drop(f"too short for Piper training: {seconds:.2f}s < {piper_min_seconds(opts.sample_rate):.2f}s")
        if seconds < opts.min_duration:
            raise Drop(f"too short: {seconds:.2f}s < {opts.min_duration:g}s")
        if seconds > opts.max_duration:
            raise Drop(f"too long: {seconds:.2f}s > {opts.max_duration:g}s")
        if opts.loudness is not None:
            samples = normalize(samples, opts.sample_rate, opts.loudness, opts.peak_ceiling).samples
        phonemes, unknown = self._phonemize(text)
        file_id = row.file_id
        save(self._stage / f"{file_id}.wav", Audio(samples, opts.sample_rate), subtype="PCM_16")
        if opts.write_flac:
            save(self._stage / f"{file_id}.flac", Audio(samples, opts.sample_rate), subtype="PCM_16")
        return Clip(
            row.id,
            file_id,
            row.source,
            text,
            row.speaker,
            dict(row.labels),
            seconds_in,
            seconds,
            phonemes,
            unknown,
            self._worker_dir,
        )

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
        raise ValueError("row has no audio")
    fd, name = tempfile.mkstemp(prefix="voxmill-", suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(row.audio_bytes)
        return load(name, mono=True)
    finally:
        os.unlink(name)


def _trim(samples: np.ndarray, sr: int, keep: float) -> np.ndarray:
    """Cut leading/trailing non-speech (Silero VAD), keeping ``keep`` seconds of it on each side."""
    segments = speech_segments(samples, sr)
    if not segments:
        raise Drop("no speech found (VAD)")
    pad = int(keep * sr)
    start = max(0, segments[0].start - pad)
    end = min(samples.shape[0], segments[-1].end + pad)
    return np.ascontiguousarray(samples[start:end])
