"""check agrees with piper's trainer: a dataset from prepare and a checkpoint of piper's own VitsModel pass as the
trainer would use them (num_symbols 256, validation rows from metadata_val.csv, steps counted in batches)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from prepared import prepared_dataset
from voxmill.check import CheckOptions, Report, Severity, run
from voxmill.check.checks.split import batches_per_epoch
from voxmill.corpus import Source, read_rows
from voxmill.corpus.piper import PIPER_NUM_SYMBOLS
from voxmill.corpus.rows import Split
from voxmill.engine import RunOptions

SERIAL = RunOptions(workers=1, backend="serial", progress=False)  # no worker start-up per check


@pytest.fixture(scope="module")
def prepared(speech_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``voxmill prepare --val-fraction 0.2`` of 12 synthesized two-speaker clips: 10 training, 2 validation."""
    return prepared_dataset(speech_cache, tmp_path_factory.mktemp("trainer") / "dataset", val_fraction=0.2)


def check(dataset: Path, **kwargs: object) -> Report:
    return run(CheckOptions(dataset, run=SERIAL, **kwargs))  # type: ignore[arg-type]


def severity(report: Report, check_id: str) -> Severity:
    [found] = report.by_id(check_id)
    return found.severity


def _vits_checkpoint(path: Path, num_speakers: int, num_symbols: int = PIPER_NUM_SYMBOLS) -> None:
    """What Lightning saves for piper's own VitsModel after 2 batches (global_step 4: two optimizers per batch).

    A small generator (the discriminator has one size); made, not trained: a training step takes seconds.
    """
    import lightning
    import torch
    from piper.train.vits.lightning import VitsModel

    model = VitsModel(
        num_symbols=num_symbols, num_speakers=num_speakers, hidden_channels=96, inter_channels=96,
        filter_channels=384, upsample_initial_channel=64, mos_metric=None,
    )  # fmt: skip
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "epoch": 0,
            "global_step": 4,
            "optimizer_states": [{}, {}],
            "pytorch-lightning_version": lightning.__version__,
        },
        path,
    )


def test_prepared_dataset_is_what_the_trainer_reads(prepared: Path, tmp_path: Path) -> None:
    config = json.loads((prepared / "config.json").read_text())
    assert config["num_symbols"] == PIPER_NUM_SYMBOLS == 256
    val_lines = (prepared / "metadata_val.csv").read_text().splitlines()
    train_lines = (prepared / "metadata.csv").read_text().splitlines()
    # speaker ids in order of first appearance, train rows then validation rows: what piper's trainer assigns
    first_seen = list(dict.fromkeys(line.split("|")[1] for line in train_lines + val_lines))
    assert config["speaker_id_map"] == {name: i for i, name in enumerate(first_seen)}

    report = check(prepared, batch_size=4, report_dir=tmp_path / "report")
    failing = [f.to_dict() for f in report.findings if f.severity is Severity.FAIL]
    assert report.ready, failing
    assert severity(report, "metadata.orphan_audio") is Severity.PASS  # prepare's validation clips are rows
    assert severity(report, "config.num_symbols") is Severity.PASS
    assert severity(report, "dataset.validation") is Severity.PASS
    assert severity(report, "speakers.num_speakers") is Severity.PASS
    summary = report.summary
    assert (summary["clips"], summary["train_clips"], summary["val_clips"]) == (12, 10, 2)
    # piper's train loader drops the ragged last batch: 10 clips in batches of 4 are 2 batches = 2 voxmill steps
    assert summary["batches_per_epoch"] == summary["steps_per_epoch"] == 2
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "12 clips (10 training, 2 validation)" in markdown and "batch size 4: 2 " in markdown
    assert "10 training, 2 validation" in (tmp_path / "report" / "report.html").read_text()
    assert check(prepared, batch_size=32).summary["steps_per_epoch"] == 1  # fewer clips than a batch: one batch


def test_batches_per_epoch_is_the_train_loaders() -> None:
    # (train clips, batch size) -> batches: drop_last only when there is more than one batch
    cases = {(10, 4): 2, (9, 4): 2, (8, 4): 2, (5, 4): 1, (4, 4): 1, (3, 4): 1, (0, 4): 0, (64, 32): 2, (65, 32): 2}
    assert {case: batches_per_epoch(*case) for case in cases} == cases


def test_trained_checkpoint_is_ready_and_a_speaker_mismatch_fails(prepared: Path, tmp_path: Path) -> None:
    good = tmp_path / "epoch=0-step=4.ckpt"
    _vits_checkpoint(good, num_speakers=2)
    report = check(prepared, checkpoint=good)
    assert report.ready, [f.to_dict() for f in report.findings if f.severity is Severity.FAIL]
    assert severity(report, "checkpoint.hparams") is Severity.PASS
    assert severity(report, "checkpoint.resumable") is Severity.PASS
    # Lightning's global_step 4 counts generator and discriminator steps: 2 batches, in voxmill's unit
    assert "epoch 0, step 2 (global_step 4" in report.by_id("checkpoint.load")[0].message

    other = tmp_path / "three.ckpt"
    _vits_checkpoint(other, num_speakers=3)
    report = check(prepared, checkpoint=other)
    assert not report.ready and severity(report, "checkpoint.hparams") is Severity.FAIL
    [items] = [f.items for f in report.by_id("checkpoint.hparams")]
    assert items == [f"num_speakers: checkpoint 3, {prepared / 'config.json'} 2"]


def test_run_folder_config_is_compared_like_with_like(prepared: Path, tmp_path: Path) -> None:
    """An older prepare's num_symbols (166) disagrees with a normally trained checkpoint; the trainer's own
    config (a run folder's config.json, given with --config) agrees."""
    old = tmp_path / "old"
    shutil.copytree(prepared, old)
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "num_symbols": 166}))
    ckpt = tmp_path / "last.ckpt"
    _vits_checkpoint(ckpt, num_speakers=2)
    report = check(old, checkpoint=ckpt)
    assert severity(report, "config.num_symbols") is Severity.WARN
    [hparams] = report.by_id("checkpoint.hparams")
    assert hparams.severity is Severity.FAIL and "256" in hparams.hint
    assert hparams.items == [f"num_symbols: checkpoint 256, {old / 'config.json'} 166"]

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({**config, "num_symbols": 256}))  # what the trainer wrote
    report = check(old, checkpoint=ckpt, config=run_dir / "config.json")
    assert severity(report, "checkpoint.hparams") is Severity.PASS

    (old / "config.json").write_text(json.dumps({**config, "num_symbols": 100}))  # espeak's map reaches id 165
    report = check(old)
    [symbols] = report.by_id("config.num_symbols")
    assert symbols.severity is Severity.FAIL and not report.ready and "165" in symbols.message


def test_no_validation_rows_warn_with_the_fix(prepared: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(prepared, bare)
    for line in (bare / "metadata_val.csv").read_text().splitlines():
        (bare / "wavs" / f"{line.split('|')[0]}.wav").unlink()
    (bare / "metadata_val.csv").unlink()
    report = check(bare, batch_size=4)
    [validation] = report.by_id("dataset.validation")
    assert validation.severity is Severity.WARN and "--val-fraction" in validation.hint
    assert "val_mel" in validation.message and report.ready and not check(bare, strict=True).ready
    assert (report.summary["train_clips"], report.summary["val_clips"], report.summary["steps_per_epoch"]) == (10, 0, 2)


def test_validation_rows_are_read_with_their_split_and_checked(prepared: Path, tmp_path: Path) -> None:
    rows_iter, how = read_rows(Source(prepared))
    rows = list(rows_iter)
    by_split = {split: [r.id for r in rows if r.split is split] for split in Split}
    assert len(by_split[Split.TRAIN]) == 10 and len(by_split[Split.VALIDATION]) == 2 and "metadata_val.csv" in how
    # A validation clip also listed for training is a duplicate id (it would leak into the validation loss).
    leaky = tmp_path / "leaky"
    shutil.copytree(prepared, leaky)
    val = (leaky / "metadata_val.csv").read_text()
    (leaky / "metadata.csv").write_text((leaky / "metadata.csv").read_text() + val.splitlines()[0] + "\n")
    report = check(leaky)
    assert severity(report, "metadata.duplicate_id") is Severity.FAIL
    assert by_split[Split.VALIDATION][0] in " ".join(report.by_id("metadata.duplicate_id")[0].items)


def test_validation_file_shares_the_layout_and_keeps_non_ascii_names(tmp_path: Path) -> None:
    """Two validation rows from two speakers look like id|text|normalized on their own; read with metadata.csv's
    layout they are id|speaker|text. Speaker and file names in Cyrillic, Catalan and Chinese survive."""
    (tmp_path / "wavs").mkdir()
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(22050) / 22050)).astype(np.float32)
    speakers = ["Анна", "Jordi_Pérez", "王芳"]
    train = [f"клип{i}|{speakers[i % 3]}|Sentence number {i}." for i in range(9)]
    val = ["val_ç0|Анна|Validation one.", "验证1|王芳|Validation two."]
    for line in train + val:
        sf.write(tmp_path / "wavs" / f"{line.split('|')[0]}.wav", tone, 22050, subtype="PCM_16")
    (tmp_path / "metadata.csv").write_text("\n".join(train) + "\n", encoding="utf-8")
    (tmp_path / "metadata_val.csv").write_text("\n".join(val) + "\n", encoding="utf-8")
    rows_iter, how = read_rows(Source(tmp_path))
    rows = list(rows_iter)
    assert "id|speaker|text" in how and all(r.error is None for r in rows)
    assert [(r.id, r.speaker, r.split) for r in rows[-2:]] == [
        ("val_ç0", "Анна", Split.VALIDATION),
        ("验证1", "王芳", Split.VALIDATION),
    ]
    # Given metadata.csv itself (not the folder), only that table is read.
    assert len(list(read_rows(Source(tmp_path / "metadata.csv"))[0])) == 9
