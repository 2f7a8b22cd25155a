"""Output layouts: Piper training folder, Hugging Face parquet shards, NeMo manifests. All atomic."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.audio.io import atomic_path, write_text_atomic
from voxmill.corpus import RESERVED_LABELS, join_fields
from voxmill.corpus.piper import PIPER_METADATA, PIPER_NUM_SYMBOLS, PIPER_VALIDATION_METADATA
from voxmill.models.voice_config import DEFAULT_LENGTH_SCALE, DEFAULT_NOISE_SCALE, DEFAULT_NOISE_W
from voxmill.prepare.steps import Clip

__all__ = ["OUTPUT_FORMATS", "hf_files", "place_wavs", "write_hf", "write_nemo", "write_piper", "write_text"]

OUTPUT_FORMATS = ("piper", "hf", "nemo")
HF_SHARD_ROWS = 1000


def write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def place_wavs(clips: list[Clip], stage: Path, out: Path, keep_staged: bool = False) -> None:
    """Move staged wavs into ``out/wavs`` (a rename: no copy, and never half a file).

    ``keep_staged`` (a run that stopped early, so ``--resume`` will want them) links instead, and the
    staged copy stays. Every kept clip has its staged wav (a resumed record counts only while it
    does), so a missing one means something else removed it: an error, never a row pointing at an
    old or absent file.
    """
    wavs = out / "wavs"
    wavs.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        staged, target = clip.staged(stage), wavs / f"{clip.file_id}.wav"
        try:
            if not keep_staged:
                os.replace(staged, target)
                continue
            with atomic_path(target) as tmp:
                try:
                    os.link(staged, tmp)
                except OSError:  # a file system without hard links
                    shutil.copy2(staged, tmp)
        except FileNotFoundError:
            raise errors.ProcessingError(
                f"{staged}: staged clip of {clip.id!r} vanished during the run; run again with --resume"
            ) from None


def _multi_speaker(clips: list[Clip]) -> bool:
    return len({c.speaker for c in clips if c.speaker}) > 1


def write_piper(train: list[Clip], val: list[Clip], out: Path, sample_rate: int, espeak_voice: str | None) -> None:
    """``metadata.csv`` (+ ``metadata_val.csv``) and a ``config.json`` that piper's PiperConfig loads.

    The config says what piper's trainer itself writes for these rows: num_symbols 256 and speaker
    ids in order of first appearance (training rows, then validation rows), so the dataset, the
    trainer's config and a checkpoint trained on them agree.
    """
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    every = train + val
    multi = _multi_speaker(every)
    speakers = list(dict.fromkeys(str(c.speaker) for c in every if c.speaker)) if multi else []
    highest = max(i for ids in DEFAULT_PHONEME_ID_MAP.values() for i in ids)

    def lines(clips: list[Clip]) -> str:
        # The id column is the wav's name stem (piper reads <audio_dir>/<id>.wav); a '|' in a text or
        # speaker is quoted the way piper's trainer (csv.reader) and voxmill's reader read it back.
        if multi:
            return "".join(join_fields([c.file_id, str(c.speaker), c.text]) for c in clips)
        return "".join(join_fields([c.file_id, c.text]) for c in clips)

    write_text(out / PIPER_METADATA, lines(train))
    if val:
        write_text(out / PIPER_VALIDATION_METADATA, lines(val))
    config: dict[str, Any] = {
        "dataset": out.name,
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
    write_text(out / "config.json", json.dumps(config, ensure_ascii=False, indent=2) + "\n")


def write_nemo(train: list[Clip], val: list[Clip], out: Path) -> None:
    def manifest(clips: list[Clip]) -> str:
        rows = []
        for c in clips:
            row = {
                "audio_filepath": str((out / "wavs" / f"{c.file_id}.wav").resolve()),
                "duration": round(c.seconds_out, 4),
                "text": c.text,
                "speaker": c.speaker,
            }
            # Labels never replace a column (Source refuses such names; this keeps it so for any caller).
            row.update((key, value) for key, value in c.labels.items() if key not in row)
            rows.append(json.dumps(row, ensure_ascii=False) + "\n")
        return "".join(rows)

    write_text(out / "manifest_train.jsonl", manifest(train))
    write_text(out / "manifest_val.jsonl", manifest(val))


def _hf_features(label_keys: list[str]) -> dict[str, Any]:
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


def _hf_shards(train: list[Clip], val: list[Clip]) -> list[tuple[str, list[Clip]]]:
    """(file name under ``hf/``, clips) per shard."""
    shards_of = []
    for split, clips in (("train", train), ("validation", val)):
        shards = max(1, -(-len(clips) // HF_SHARD_ROWS)) if clips else 0
        for shard in range(shards):
            part = clips[shard * HF_SHARD_ROWS : (shard + 1) * HF_SHARD_ROWS]
            shards_of.append((f"{split}-{shard:05d}-of-{shards:05d}.parquet", part))
    return shards_of


def hf_files(train: list[Clip], val: list[Clip]) -> list[str]:
    """The files :func:`write_hf` writes, relative to the output folder."""
    return [f"hf/{name}" for name, _ in _hf_shards(train, val)]


def write_hf(train: list[Clip], val: list[Clip], out: Path, stage: Path) -> None:
    """``out/hf/{train,validation}-NNNNN-of-NNNNN.parquet``; audio is struct<bytes, path> with FLAC bytes.

    The ``huggingface`` schema metadata makes ``datasets`` show an ``Audio`` feature; pyarrow writes it
    here, so no torchcodec or datasets install is needed to produce the dataset.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    label_keys = sorted({k for c in train + val for k in c.labels} - RESERVED_LABELS)
    features = _hf_features(label_keys)
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("audio", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
            ("text", pa.string()),
            ("speaker", pa.string()),
            ("duration", pa.float64()),
            *[(key, pa.string()) for key in label_keys],
        ],
        metadata={"huggingface": json.dumps({"info": {"features": features}})},
    )
    folder = out / "hf"
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in _hf_shards(train, val):
        columns: dict[str, list[Any]] = {
            "id": [c.id for c in part],
            "audio": [{"bytes": c.staged(stage, ".flac").read_bytes(), "path": f"{c.file_id}.flac"} for c in part],
            "text": [c.text for c in part],
            "speaker": [c.speaker for c in part],
            "duration": [round(c.seconds_out, 4) for c in part],
        }
        for key in label_keys:
            columns[key] = [c.labels.get(key) for c in part]
        table = pa.Table.from_pydict(columns, schema=schema)
        with atomic_path(folder / name) as tmp:
            pq.write_table(table, tmp)
