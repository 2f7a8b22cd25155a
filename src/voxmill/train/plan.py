"""What a training run will do, decided before anything is written: rows, split, speakers, symbols,
the model's shape, and whether it starts fresh, fine-tunes (``--from``) or resumes."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.corpus import Row, Source, join_fields, read_rows
from voxmill.train.checkpoints import CheckpointInfo, read_checkpoint, resumable
from voxmill.train.options import QUALITIES, TrainOptions, architecture

__all__ = ["ARCH_KEYS", "Plan", "make_plan", "trainer_csv"]

# The VitsModel arguments that fix the model's shape: a checkpoint's decide a fine-tune's or resume's.
ARCH_KEYS = sorted({key for values in QUALITIES.values() for key in values})
# When the dataset has no validation rows: this share of the rows validates (at least 1).
FALLBACK_VAL_SHARE = 0.05
TEST_EXAMPLES = 2


@dataclass
class Plan:
    dataset: Path  # the dataset folder
    train: list[Row]
    val: list[Row]
    speakers: list[str]
    sample_rate: int
    espeak_voice: str
    num_symbols: int
    voice_name: str
    architecture: dict[str, Any]
    quality: str
    resume: CheckpointInfo | None = None
    base: CheckpointInfo | None = None
    warnings: list[str] = field(default_factory=list)
    skipped_rows: int = 0

    @property
    def num_speakers(self) -> int:
        return max(1, len(self.speakers))


def _dataset_folder(path: Path) -> Path:
    folder = path if path.is_dir() else path.parent
    if not (folder / "metadata.csv").is_file():
        raise errors.DatasetError(
            f"{path}: not a Piper dataset folder (no metadata.csv); make one with `voxmill prepare SOURCE -o DATASET`"
        )
    return folder


def _rows(folder: Path) -> tuple[list[Row], list[Row], int]:
    """Training rows, validation rows (metadata_val.csv) and how many rows cannot train."""
    from voxmill.corpus.rows import Split

    rows, _layout = read_rows(Source(folder))
    train: list[Row] = []
    val: list[Row] = []
    bad = 0
    for row in rows:
        if row.error or not row.audio_path or not row.text.strip():
            bad += 1  # the gate reports these; with --no-check they are left out, and counted
        else:
            (val if row.split is Split.VALIDATION else train).append(row)
    return train, val, bad


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise errors.DatasetError(f"{path}: cannot be read as JSON ({exc})") from None
    return value if isinstance(value, dict) else {}


def _needed_symbols() -> int:
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    return max(i for ids in DEFAULT_PHONEME_ID_MAP.values() for i in ids) + 1


def _sample_rate(config: dict[str, Any], rows: list[Row]) -> int:
    rate = (config.get("audio") or {}).get("sample_rate") if isinstance(config.get("audio"), dict) else None
    if isinstance(rate, int) and not isinstance(rate, bool) and 8000 <= rate <= 192000:
        return rate
    import soundfile

    try:
        return int(soundfile.info(rows[0].audio_path).samplerate)
    except (RuntimeError, OSError, IndexError) as exc:
        raise errors.DatasetError(f"no sample rate in config.json and the first clip cannot tell: {exc}") from None


def _check_base(info: CheckpointInfo, sample_rate: int, speakers: int, what: str) -> list[str]:
    """Refuse what cannot work with a one-line reason; return warnings for what is handled."""
    hp = info.hparams
    rate = hp.get("sample_rate")
    if isinstance(rate, int) and rate != sample_rate:
        raise errors.ConfigError(
            f"{what} {info.path.name} was trained at {rate} Hz and the dataset is {sample_rate} Hz: "
            f"prepare the dataset with --sample-rate {rate}"
        )
    if hp.get("use_mrd"):
        raise errors.ConfigError(
            f"{what} {info.path.name} uses piper's MRD discriminator, which voxmill does not train"
        )
    base_speakers = hp.get("num_speakers", 1)
    warnings = []
    if isinstance(base_speakers, int) and base_speakers != speakers:
        warnings.append(
            f"{what} has {base_speakers} speaker(s) and the dataset {speakers}: the matching weights are copied, "
            "the speaker embedding starts fresh"
        )
    return warnings


def make_plan(opts: TrainOptions, checkpoints: Path) -> Plan:
    folder = _dataset_folder(opts.dataset)
    train, val, bad = _rows(folder)
    warnings = []
    if not val and len(train) >= 2:
        take = max(1, math.ceil(len(train) * FALLBACK_VAL_SHARE))
        train, val = train[:-take], train[-take:]
        warnings.append(
            f"the dataset has no metadata_val.csv rows: {take} training rows validate instead "
            "(voxmill prepare --val-fraction sets a validation split)"
        )
    if len(train) < 1 or len(val) < 1:
        raise errors.DatasetError(f"{folder}: {len(train) + len(val)} usable rows; training needs at least 2")
    config = _config(folder)
    # First appearance, training rows then validation rows: how prepare numbers them and the trainer too.
    speakers = list(dict.fromkeys(r.speaker for r in train + val if r.speaker))
    if len(speakers) == 1:
        speakers = []  # one named speaker is a single-speaker voice (no speaker column, no embedding)
    sample_rate = _sample_rate(config, train)
    configured = (config.get("espeak") or {}).get("voice") if isinstance(config.get("espeak"), dict) else None
    espeak = opts.espeak_voice or (configured if isinstance(configured, str) else None)
    if not espeak:
        raise errors.ConfigError(f"{folder}: no espeak voice in config.json; give --espeak-voice (e.g. en-us)")
    if opts.espeak_voice and isinstance(configured, str) and configured != opts.espeak_voice:
        warnings.append(f"--espeak-voice {opts.espeak_voice} overrides the dataset's {configured}")
    needed = _needed_symbols()
    symbols = config.get("num_symbols")
    num_symbols = symbols if isinstance(symbols, int) and not isinstance(symbols, bool) and symbols >= needed else 256
    resume, skipped = resumable(checkpoints)
    warnings += skipped
    if opts.resume and resume is None:
        raise errors.ConfigError(f"--resume: {checkpoints} holds no checkpoint that loads; nothing to resume")
    base = None
    if resume is not None and opts.base is not None:
        raise errors.ConfigError(
            f"{opts.run_dir} already holds checkpoints: rerun without --from to resume it, or train into a new -o"
        )
    arch = architecture(opts.quality)
    origin = resume
    if opts.base is not None:
        base = read_checkpoint(opts.base)
        origin = base
    if origin is not None:
        what = "the run" if origin is resume else "--from"
        warnings += [] if origin is resume else _check_base(origin, sample_rate, max(1, len(speakers)), what)
        if origin is resume:
            _check_resume(origin, sample_rate, max(1, len(speakers)))
        hp = origin.hparams
        arch = {key: hp[key] for key in ARCH_KEYS if key in hp}
        if isinstance(hp.get("num_symbols"), int):
            num_symbols = hp["num_symbols"]
        if num_symbols < needed:
            raise errors.ConfigError(f"{what} has {num_symbols} symbols; espeak phonemes need {needed}")
    name = opts.name or folder.resolve().name or "voice"
    return Plan(
        dataset=folder,
        train=train,
        val=val,
        speakers=speakers,
        sample_rate=sample_rate,
        espeak_voice=espeak,
        num_symbols=num_symbols,
        voice_name=name,
        architecture=arch,
        quality=opts.quality,
        resume=resume,
        base=base,
        warnings=warnings,
        skipped_rows=bad,
    )


def _check_resume(info: CheckpointInfo, sample_rate: int, speakers: int) -> None:
    hp = info.hparams
    for key, now in (("sample_rate", sample_rate), ("num_speakers", speakers)):
        then = hp.get(key)
        if isinstance(then, int) and then != now:
            raise errors.ConfigError(
                f"{info.path}: this run was trained with {key} {then} and the dataset now has {now}; "
                "train into a new -o with --from this checkpoint"
            )


def trainer_csv(plan: Plan) -> tuple[str, int]:
    """The metadata the trainer reads (training rows, then validation rows: the child splits by count)
    and how many training rows it holds.

    Ids are audio paths relative to the dataset folder (the trainer opens ``audio_dir / id``). Rows keep
    the dataset's order, so the trainer's speaker map (by first appearance) is the one prepare wrote.
    """
    root = os.path.abspath(plan.dataset)

    def lines(rows: list[Row]) -> list[str]:
        out = []
        for row in rows:
            # abspath, not resolve: the reader kept the row inside the folder as named; the trainer opens that name.
            rel = Path(os.path.relpath(os.path.abspath(str(row.audio_path)), root))
            if rel.parts[:1] == ("..",):
                continue  # never outside the dataset (the reader already refuses such rows)
            fields = [rel.as_posix(), str(row.speaker), row.text] if plan.speakers else [rel.as_posix(), row.text]
            out.append(join_fields(fields))
        return out

    train = lines(plan.train)
    return "".join(train + lines(plan.val)), len(train)
