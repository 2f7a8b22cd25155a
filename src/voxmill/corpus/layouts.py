"""What each dataset layout's files contain: Piper folder, Hugging Face parquet shards, NeMo manifests.

Pure: strings, dicts and tables, no file I/O (``engine.datasets`` writes them, atomically). Both
``prepare`` and ``segment`` write datasets, and applications may not import each other, so the
layouts live in this leaf; any clip with the :class:`DatasetClip` fields can be written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from voxmill.corpus.piper import (
    DEFAULT_LENGTH_SCALE,
    DEFAULT_NOISE_SCALE,
    DEFAULT_NOISE_W,
    PIPER_METADATA,
    PIPER_NUM_SYMBOLS,
    PIPER_VALIDATION_METADATA,
)
from voxmill.corpus.rows import RESERVED_LABELS
from voxmill.corpus.tables import join_fields

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "HF_SHARD_ROWS",
    "LAYOUTS",
    "NEMO_MANIFESTS",
    "DatasetClip",
    "dataset_files",
    "hf_features",
    "hf_label_keys",
    "hf_schema",
    "hf_shards",
    "hf_table",
    "multi_speaker",
    "nemo_manifest",
    "piper_config",
    "piper_metadata",
]

LAYOUTS = ("piper", "hf", "nemo")
HF_SHARD_ROWS = 1000
NEMO_MANIFESTS = ("manifest_train.jsonl", "manifest_val.jsonl")


class DatasetClip(Protocol):
    """The fields a layout reads from a clip. ``file_id``: the wav's name stem; ``seconds_out``: its duration."""

    @property
    def id(self) -> str: ...
    @property
    def file_id(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def speaker(self) -> str | None: ...
    @property
    def labels(self) -> Mapping[str, str]: ...
    @property
    def seconds_out(self) -> float: ...


C = TypeVar("C", bound=DatasetClip)


def multi_speaker(clips: Sequence[DatasetClip]) -> bool:
    """More than one named speaker: the Piper metadata gets a speaker column."""
    return len({c.speaker for c in clips if c.speaker}) > 1


def piper_metadata(clips: Sequence[DatasetClip], multi: bool) -> str:
    """``metadata.csv`` rows: ``file_id|text`` or ``file_id|speaker|text``.

    The id column is the wav's name stem (piper reads <audio_dir>/<id>.wav); a '|' in a text or
    speaker is quoted the way piper's trainer (csv.reader) and voxmill's reader read it back.
    """
    if multi:
        return "".join(join_fields([c.file_id, str(c.speaker), c.text]) for c in clips)
    return "".join(join_fields([c.file_id, c.text]) for c in clips)


def piper_config(
    train: Sequence[DatasetClip], val: Sequence[DatasetClip], sample_rate: int, espeak_voice: str | None, name: str
) -> dict[str, Any]:
    """A ``config.json`` that piper's PiperConfig loads, for the dataset folder ``name``.

    It says what piper's trainer itself writes for these rows: num_symbols 256 and speaker ids in
    order of first appearance (training rows, then validation rows), so the dataset, the trainer's
    config and a checkpoint trained on them agree.
    """
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    every = [*train, *val]
    speakers = list(dict.fromkeys(str(c.speaker) for c in every if c.speaker)) if multi_speaker(every) else []
    highest = max(i for ids in DEFAULT_PHONEME_ID_MAP.values() for i in ids)
    return {
        "dataset": name,
        "audio": {"sample_rate": sample_rate, "quality": "medium"},
        "espeak": {"voice": espeak_voice or "en-us"},
        "language": {"code": (espeak_voice or "en-us").replace("-", "_")},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": DEFAULT_PHONEME_ID_MAP,
        "num_symbols": max(PIPER_NUM_SYMBOLS, highest + 1),
        "num_speakers": max(1, len(speakers)),
        "speaker_id_map": {s: i for i, s in enumerate(speakers)},
        "inference": {
            "noise_scale": DEFAULT_NOISE_SCALE,
            "length_scale": DEFAULT_LENGTH_SCALE,
            "noise_w": DEFAULT_NOISE_W,
        },
        "piper_version": "1.0.0",
    }


def nemo_manifest(clips: Sequence[DatasetClip], wav_dir: Path) -> str:
    """NeMo JSON lines; ``wav_dir``: the absolute (resolved) folder holding ``<file_id>.wav``."""
    rows = []
    for c in clips:
        row: dict[str, Any] = {
            "audio_filepath": str(wav_dir / f"{c.file_id}.wav"),
            "duration": round(c.seconds_out, 4),
            "text": c.text,
            "speaker": c.speaker,
        }
        # Labels never replace a column (Source refuses such names; this keeps it so for any caller).
        row.update((key, value) for key, value in c.labels.items() if key not in row)
        rows.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(rows)


def hf_label_keys(clips: Sequence[DatasetClip]) -> list[str]:
    """The label columns of an HF dataset of ``clips``: every label name but the reserved columns."""
    return sorted({k for c in clips for k in c.labels} - RESERVED_LABELS)


def hf_features(label_keys: list[str]) -> dict[str, Any]:
    """The ``datasets`` features (``info.features`` of the ``huggingface`` schema metadata)."""
    value = {"dtype": "string", "_type": "Value"}
    features: dict[str, Any] = {
        "id": value,
        "audio": {"_type": "Audio"},
        "text": value,
        "speaker": value,
        "duration": {"dtype": "float64", "_type": "Value"},
    }
    features.update({key: value for key in label_keys})
    return features


def hf_schema(label_keys: list[str]) -> pa.Schema:
    """Audio is struct<bytes, path> with FLAC bytes; the ``huggingface`` metadata makes ``datasets`` show
    an ``Audio`` feature, so no torchcodec or datasets install is needed to produce the dataset."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            ("text", pa.string()),
            ("speaker", pa.string()),
            ("duration", pa.float64()),
            *[(key, pa.string()) for key in label_keys],
        ],
        metadata={"huggingface": json.dumps({"info": {"features": hf_features(label_keys)}})},
    )


def hf_shards(train: Sequence[C], val: Sequence[C]) -> list[tuple[str, Sequence[C]]]:
    """(file name under ``hf/``, clips) per shard: ``{train,validation}-NNNNN-of-NNNNN.parquet``."""
    shards_of: list[tuple[str, Sequence[C]]] = []
    for split, clips in (("train", train), ("validation", val)):
        shards = max(1, -(-len(clips) // HF_SHARD_ROWS)) if clips else 0
        for shard in range(shards):
            part = clips[shard * HF_SHARD_ROWS : (shard + 1) * HF_SHARD_ROWS]
            shards_of.append((f"{split}-{shard:05d}-of-{shards:05d}.parquet", part))
    return shards_of


def hf_table(part: Sequence[C], label_keys: list[str], schema: pa.Schema, flac_bytes: Callable[[C], bytes]) -> pa.Table:
    """One shard's table; ``flac_bytes`` gives a clip's FLAC file, read only while this shard is built."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {
        "id": [c.id for c in part],
        "audio": [{"bytes": flac_bytes(c), "path": f"{c.file_id}.flac"} for c in part],
        "text": [c.text for c in part],
        "speaker": [c.speaker for c in part],
        "duration": [round(c.seconds_out, 4) for c in part],
    }
    for key in label_keys:
        columns[key] = [c.labels.get(key) for c in part]
    return pa.Table.from_pydict(columns, schema=schema)


def dataset_files(
    formats: Sequence[str], kept: Sequence[DatasetClip], train: Sequence[DatasetClip], val: Sequence[DatasetClip]
) -> list[str]:
    """Every file a run writes, relative to OUT: the dataset of ``formats`` and the run's
    ``report.jsonl`` and ``stats.json`` (both applications write those beside it)."""
    files = ["report.jsonl", "stats.json"]
    if {"piper", "nemo"} & set(formats):
        files += [f"wavs/{c.file_id}.wav" for c in kept]
    if "piper" in formats:
        files += [PIPER_METADATA, "config.json"] + ([PIPER_VALIDATION_METADATA] if val else [])
    if "nemo" in formats:
        files += list(NEMO_MANIFESTS)
    if "hf" in formats:
        files += [f"hf/{name}" for name, _ in hf_shards(train, val)]
    return files
