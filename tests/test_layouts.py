"""corpus.layouts (what each dataset file contains) and engine.datasets (writing them) for any clip class."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf

from voxmill.corpus import Row, split_fields
from voxmill.corpus.layouts import dataset_files, hf_shards, nemo_manifest, piper_config, piper_metadata
from voxmill.engine import write_dataset


@dataclass(frozen=True)
class Piece:
    """A clip class of its own (as segment has): only the DatasetClip fields, nothing of prepare's Clip."""

    id: str
    text: str
    speaker: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    seconds_out: float = 0.5

    @property
    def file_id(self) -> str:
        return Row(self.id, "").file_id


CLIPS = [
    Piece("голос_001", "Привет | мир", "Катя"),
    Piece("çà/02", "Això és «bo».", "Jordi"),
    Piece("你好", "你好。", "李"),
]


def test_piper_metadata_quotes_the_delimiter_and_keeps_every_script() -> None:
    lines = piper_metadata(CLIPS, multi=True).splitlines()
    assert [split_fields(line) for line in lines] == [
        ["голос_001", "Катя", "Привет | мир"],
        ["çà%2F02", "Jordi", "Això és «bo»."],
        ["你好", "李", "你好。"],
    ]
    assert split_fields(piper_metadata(CLIPS[:1], multi=False).rstrip("\n")) == ["голос_001", "Привет | мир"]


def test_piper_config_numbers_speakers_in_order_of_appearance() -> None:
    config = piper_config(CLIPS[:1], CLIPS[1:], 22050, "ru", "набор")
    assert config["speaker_id_map"] == {"Катя": 0, "Jordi": 1, "李": 2} and config["num_speakers"] == 3
    assert config["dataset"] == "набор" and config["language"]["code"] == "ru" and config["num_symbols"] == 256
    assert config["inference"] == {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8}


def test_nemo_manifest_and_file_list(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in nemo_manifest(CLIPS, tmp_path).splitlines()]
    assert rows[0]["audio_filepath"] == str(tmp_path / "голос_001.wav") and rows[0]["text"] == "Привет | мир"
    assert dataset_files(["piper", "hf"], CLIPS, CLIPS[:2], CLIPS[2:]) == [
        "report.jsonl", "stats.json", "wavs/голос_001.wav", "wavs/çà%2F02.wav", "wavs/你好.wav",
        "metadata.csv", "config.json", "metadata_val.csv",
        "hf/train-00000-of-00001.parquet", "hf/validation-00000-of-00001.parquet",
    ]  # fmt: skip
    many = [Piece(f"c{i}", "t") for i in range(2001)]
    assert [name for name, _ in hf_shards(many, [])][-1] == "train-00002-of-00003.parquet"


def test_write_dataset_with_a_clip_class_of_its_own(tmp_path: Path) -> None:
    stage, out = tmp_path / "stage", tmp_path / "out"
    stage.mkdir()
    tone = (0.1 * np.sin(np.arange(11025) / 5)).astype(np.float32)
    for clip in CLIPS:
        for suffix in (".wav", ".flac"):
            sf.write(stage / f"{clip.file_id}{suffix}", tone, 22050, subtype="PCM_16")
    write_dataset(
        out,
        {"piper", "nemo", "hf"},
        CLIPS[:2],
        CLIPS[2:],
        lambda c, suffix: stage / f"{c.file_id}{suffix}",
        22050,
        None,
    )
    assert sorted(p.name for p in (out / "wavs").iterdir()) == sorted(f"{c.file_id}.wav" for c in CLIPS)
    assert not list(stage.glob("*.wav"))  # moved, not copied
    assert (out / "metadata_val.csv").read_text(encoding="utf-8") == "你好|李|你好。\n"
    table = pq.read_table(out / "hf" / "train-00000-of-00001.parquet")
    assert table.column("id").to_pylist() == ["голос_001", "çà/02"]
    assert table.column("audio").to_pylist()[0]["bytes"] == (stage / "голос_001.flac").read_bytes()
    manifest = (out / "manifest_val.jsonl").read_text(encoding="utf-8")
    assert json.loads(manifest)["audio_filepath"] == str((out / "wavs" / "你好.wav").resolve())
