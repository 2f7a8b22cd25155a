"""What a training run will do, decided before anything is written: rows, split, speakers, symbols,
the model's shape, and whether it starts fresh, fine-tunes (``--from``) or resumes.

Every row the dataset holds either trains, validates, or is left out with a warning that says how many
and why (``--no-check`` skips the gate that would have listed them): none is lost silently. Whatever a
checkpoint or a dataset's config.json says about the model is checked before a child builds it from
those numbers: a checkpoint's hyper-parameters are data, and a lie there (a billion symbols, channels
by the million) must be a one-line refusal, not a machine out of memory.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from voxmill import errors
from voxmill.corpus import Row, Source, join_fields, read_rows
from voxmill.train.checkpoints import CheckpointInfo, read_checkpoint, resumable
from voxmill.train.options import (
    HOP_LENGTH,
    MAX_NAME_BYTES,
    QUALITIES,
    TrainOptions,
    architecture,
    architecture_problem,
    plain_lists,
    plain_voice,
    quality_of,
)

__all__ = ["ARCH_KEYS", "MAX_TEXT_CHARS", "Plan", "dataset_folder", "make_plan", "trainer_csv"]

# The VitsModel arguments that fix the model's shape: a checkpoint's decide a fine-tune's or resume's.
ARCH_KEYS = sorted({key for values in QUALITIES.values() for key in values})
# When the dataset has no validation rows: this share of the rows validates (at least 1).
FALLBACK_VAL_SHARE = 0.05
TEST_EXAMPLES = 2
# A transcript longer than this is no clip's (two minutes of speech): the text encoder's attention is
# quadratic in the phonemes, so one 30,000-character row would need tens of GB in a single batch.
MAX_TEXT_CHARS = 2000
# Piper's phoneme maps use a few hundred ids; a config or checkpoint beyond this is wrong, not large.
MAX_SYMBOLS = 65536
_MAX_JSON_BYTES = 1 << 20


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


def dataset_folder(path: Path) -> Path:
    """The Piper dataset folder ``path`` names (the folder, or a file in it such as its metadata.csv)."""
    folder = path if path.is_dir() else path.parent
    if not (folder / "metadata.csv").is_file():
        raise errors.DatasetError(
            f"{path}: not a Piper dataset folder (no metadata.csv); make one with `voxmill prepare SOURCE -o DATASET`"
        )
    return folder


def _rows(folder: Path) -> tuple[list[Row], list[Row], Counter[str]]:
    """Training rows, validation rows (metadata_val.csv) and why the others cannot train (reason: count)."""
    from voxmill.corpus.rows import Split

    rows, _layout = read_rows(Source(folder))
    train: list[Row] = []
    val: list[Row] = []
    left_out: Counter[str] = Counter()
    for row in rows:
        if row.error or not row.audio_path:
            left_out[str(row.problem or "unusable")] += 1
        elif not row.text.strip():
            left_out["no transcript"] += 1
        elif len(row.text) > MAX_TEXT_CHARS:
            left_out[f"transcript over {MAX_TEXT_CHARS} characters"] += 1
        else:
            (val if row.split is Split.VALIDATION else train).append(row)
    return train, val, left_out


def _read_json(path: Path) -> Any:
    """A small JSON file's value; DatasetError when it is not one (a 2 GB "config" is not read whole)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_JSON_BYTES + 1)
        if len(data) > _MAX_JSON_BYTES:
            raise ValueError(f"larger than {_MAX_JSON_BYTES >> 20} MB")
        return json.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise errors.DatasetError(f"{path}: cannot be read as JSON ({exc})") from None


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        return {}
    value = _read_json(path)
    return value if isinstance(value, dict) else {}


def _needed_symbols() -> int:
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    return max(i for ids in DEFAULT_PHONEME_ID_MAP.values() for i in ids) + 1


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _sample_rate(config: dict[str, Any], rows: list[Row]) -> int:
    rate = (config.get("audio") or {}).get("sample_rate") if isinstance(config.get("audio"), dict) else None
    if _whole(rate) and 8000 <= rate <= 192000:
        return int(rate)
    import soundfile

    try:
        return int(soundfile.info(rows[0].audio_path).samplerate)
    except (RuntimeError, OSError, IndexError) as exc:
        raise errors.DatasetError(f"no sample rate in config.json and the first clip cannot tell: {exc}") from None


def _espeak_voice(opts: TrainOptions, config: dict[str, Any], folder: Path, warnings: list[str]) -> str:
    configured = (config.get("espeak") or {}).get("voice") if isinstance(config.get("espeak"), dict) else None
    voice = opts.espeak_voice or (configured if isinstance(configured, str) else None)
    if not voice:
        raise errors.ConfigError(f"{folder}: no espeak voice in config.json; give --espeak-voice (e.g. en-us)")
    if not plain_voice(voice):
        raise errors.ConfigError(
            f"{folder / 'config.json'}: espeak.voice {voice[:64]!r} is not an espeak-ng voice name; "
            "give --espeak-voice (e.g. en-us)"
        )
    if opts.espeak_voice and isinstance(configured, str) and configured != opts.espeak_voice:
        warnings.append(f"--espeak-voice {opts.espeak_voice} overrides the dataset's {configured[:64]!r}")
    try:
        from piper.phonemize_espeak import EspeakPhonemizer
    except ImportError:
        return voice  # the train extra is missing: the child says so
    try:
        # Milliseconds here, rather than a failure in the child after the gate and the trainer's start.
        EspeakPhonemizer().phonemize(voice, "a")
    except RuntimeError as exc:
        raise errors.ConfigError(
            f"espeak voice {voice!r}: espeak-ng cannot use it ({exc}); `espeak-ng --voices` lists the voices"
        ) from None
    return voice


def _check_base(info: CheckpointInfo, sample_rate: int, speakers: int, what: str) -> list[str]:
    """Refuse what cannot work with a one-line reason; return warnings for what is handled."""
    hp = info.hparams
    rate = hp.get("sample_rate", sample_rate)
    if not _whole(rate):
        raise errors.ConfigError(f"{what} {info.path.name}: sample_rate {str(rate)[:40]!r} is not a whole number")
    if rate != sample_rate:
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


def _check_resume(info: CheckpointInfo, sample_rate: int, speakers: int) -> None:
    hp = info.hparams
    for key, now in (("sample_rate", sample_rate), ("num_speakers", speakers)):
        then = hp.get(key)
        if isinstance(then, int) and then != now:
            raise errors.ConfigError(
                f"{info.path}: this run was trained with {key} {then} and the dataset now has {now}; "
                "train into a new -o with --from this checkpoint"
            )


def _model(opts: TrainOptions, origin: CheckpointInfo | None, what: str, num_symbols: int, needed: int,
           warnings: list[str]) -> tuple[dict[str, Any], str, int]:  # fmt: skip
    """The architecture, quality and symbol count: a checkpoint's own when there is one, else --quality's."""
    if origin is None:
        quality = opts.quality or "medium"
        return architecture(quality), quality, num_symbols
    hp = origin.hparams
    arch = {key: plain_lists(hp[key]) for key in ARCH_KEYS if key in hp}
    problem = architecture_problem(arch)
    if problem:
        raise errors.ConfigError(f"{what} {origin.path.name}: its model cannot be built here: {problem}")
    hop = hp.get("hop_length", HOP_LENGTH)
    if hop != HOP_LENGTH:
        raise errors.ConfigError(
            f"{what} {origin.path.name}: hop length {str(hop)[:20]}; voxmill's trainer uses {HOP_LENGTH}"
        )
    if "num_symbols" in hp:
        num_symbols = hp["num_symbols"]
        if not (_whole(num_symbols) and needed <= num_symbols <= MAX_SYMBOLS):
            raise errors.ConfigError(
                f"{what} {origin.path.name} has {str(num_symbols)[:40]} symbols; espeak phonemes need "
                f"{needed} to {MAX_SYMBOLS}"
            )
    quality = quality_of(arch, opts.quality) or "medium"
    if opts.quality and opts.quality != quality:
        warnings.append(f"--quality {opts.quality} does not apply: {what} is a {quality} model, and keeps its shape")
    return arch, quality, num_symbols


def _voice_name(opts: TrainOptions, folder: Path, warnings: list[str]) -> str:
    if opts.name:
        return opts.name
    # The folder's name, made into a usable voice name (printable, no '/', ':', leading dot, short enough).
    given = folder.resolve().name
    name = "".join(c if c.isprintable() and c not in "/\\:" else "_" for c in given).strip().lstrip(".")
    name = name.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", errors="ignore").strip() or "voice"
    if name != given:
        warnings.append(f"the voice is named {name!r} (from the dataset folder's name); --name gives it another")
    return name


def _name_clashes(opts: TrainOptions, name: str) -> list[str]:
    """Other recorded runs whose voices have the same name: `voxmill voices` would show only the newest."""
    from voxmill.models.trained import run_folders

    here = Path(os.path.abspath(opts.run_dir))
    warnings = []
    for run in run_folders():
        if run == here:
            continue
        try:
            record = _read_json(run / "run.json")
        except errors.DatasetError:
            continue
        if isinstance(record, dict) and record.get("voice_name") == name:
            warnings.append(
                f"the run {run} also exports voices named {name}-EPOCH; `voxmill voices`, synth and serve use "
                "the newest run's. Give --name to tell them apart"
            )
    return warnings


def _same_base(opts: TrainOptions) -> bool:
    """Whether ``--from`` names the base this run folder was started from (run.json)."""
    try:
        record = json.loads((opts.run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    base = record.get("base") if isinstance(record, dict) else None
    if not isinstance(base, str) or opts.base is None:
        return False
    try:
        return os.path.samefile(base, opts.base)
    except OSError:
        return False


def make_plan(opts: TrainOptions, checkpoints: Path) -> Plan:
    folder = dataset_folder(opts.dataset)
    train, val, left_out = _rows(folder)
    warnings: list[str] = []
    # First appearance, training rows then validation rows: how prepare numbers them and the trainer too.
    speakers = list(dict.fromkeys(r.speaker for r in train + val if r.speaker))
    if len(speakers) == 1:
        speakers = []  # one named speaker is a single-speaker voice (no speaker column, no embedding)
    if speakers:
        # The trainer would make "" (or "None") a speaker of its own, one more than the model has.
        nameless = sum(1 for r in train + val if not r.speaker)
        if nameless:
            left_out["no speaker in a multi-speaker set"] += nameless
            train, val = [r for r in train if r.speaker], [r for r in val if r.speaker]
    if left_out:
        why = ", ".join(f"{n} {reason}" for reason, n in left_out.most_common())
        total = sum(left_out.values())
        rows = "row cannot train and is" if total == 1 else "rows cannot train and are"
        warnings.append(f"{total} {rows} left out ({why}); `voxmill check` lists them")
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
    sample_rate = _sample_rate(config, train)
    espeak = _espeak_voice(opts, config, folder, warnings)
    needed = _needed_symbols()
    symbols = config.get("num_symbols")
    num_symbols = symbols if _whole(symbols) and needed <= symbols <= MAX_SYMBOLS else 256
    resume, skipped = resumable(checkpoints)
    warnings += skipped
    if opts.resume and resume is None:
        raise errors.ConfigError(f"--resume: {checkpoints} holds no checkpoint that loads; nothing to resume")
    base = None
    if resume is not None and opts.base is not None and _same_base(opts):
        opts = dataclasses.replace(opts, base=None)  # the command that made this run, run again: resume it
    if resume is not None and opts.base is not None:
        raise errors.ConfigError(
            f"{opts.run_dir} already holds checkpoints: rerun without --from to resume it, or train into a new -o"
        )
    origin = resume
    if opts.base is not None:
        base = read_checkpoint(opts.base)
        origin = base
    what = "the run" if origin is resume else "--from"
    if origin is resume and resume is not None:
        _check_resume(resume, sample_rate, max(1, len(speakers)))
    elif origin is not None:
        warnings += _check_base(origin, sample_rate, max(1, len(speakers)), what)
    arch, quality, num_symbols = _model(opts, origin, what, num_symbols, needed, warnings)
    name = _voice_name(opts, folder, warnings)
    warnings += _name_clashes(opts, name)
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
        quality=quality,
        resume=resume,
        base=base,
        warnings=warnings,
        skipped_rows=sum(left_out.values()),
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
