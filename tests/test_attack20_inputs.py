"""``voxmill train`` and ``train-status`` fed hostile inputs and options: each is refused in one line
before any work, or trained with every row it leaves out counted, never a traceback, never code run.

Most tests stop at the plan (no trainer). One slow test trains for real (x-low, batch 4, 1 then 2
steps): non-ASCII dataset, run and voice names, a single-speaker set with '|' and quotes in its texts,
a clip replaced between runs (the trainer's cache is rebuilt), a resume that keeps the run's quality.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hostile import no_traceback, voxmill
from prepared import prepared_dataset
from voxmill import errors
from voxmill.engine import RunOptions
from voxmill.engine.guards import OutputLock
from voxmill.models.trained import record_run
from voxmill.train import TrainOptions, run, run_status
from voxmill.train.options import DEFAULT_ARCHITECTURE, MAX_NAME_BYTES, QUALITIES, quality_of
from voxmill.train.plan import MAX_TEXT_CHARS, make_plan, trainer_csv

SERIAL = RunOptions(workers=1, backend="serial", progress=False)


@pytest.fixture(scope="module")
def dataset(speech_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 clips of two speakers, 3 of them validation (voxmill prepare)."""
    return prepared_dataset(speech_cache, tmp_path_factory.mktemp("inputs") / "ds", 12, val_fraction=0.25)


def copy(dataset: Path, to: Path) -> Path:
    shutil.copytree(dataset, to)
    return to


def options(dataset: Path, run_dir: Path, **kwargs: Any) -> TrainOptions:
    values: dict[str, Any] = {"batch_size": 4, "quiet": True, "run": SERIAL, "check": False}
    values.update(kwargs)
    return TrainOptions(dataset, run_dir, **values)


def plan_of(dataset: Path, tmp_path: Path, **kwargs: Any) -> Any:
    opts = options(dataset, tmp_path / "run", **kwargs)
    opts.validate()
    return make_plan(opts, tmp_path / "run" / "checkpoints")


def rewrite(path: Path, lines: dict[int, str]) -> None:
    rows = path.read_text(encoding="utf-8").splitlines()
    for index, line in lines.items():
        rows[index] = line
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


# --- options -------------------------------------------------------------------------------------

BAD_OPTIONS: list[dict[str, Any]] = [
    {"epochs": 0}, {"epochs": -3}, {"epochs": math.nan}, {"epochs": 10**12}, {"epochs": True},
    {"max_steps": 0}, {"max_steps": 10**30}, {"batch_size": 0}, {"batch_size": 10**9}, {"batch_size": 2.5},
    {"export_every": 0}, {"seed": -1}, {"device": "tpu"}, {"quality": "ultra"}, {"data_workers": -1},
    {"name": ""}, {"name": "  "}, {"name": " x"}, {"name": "x "}, {"name": "."}, {"name": ".."}, {"name": ".hidden"},
    {"name": "a/b"}, {"name": "a\\b"}, {"name": "a:b"}, {"name": "a\nb"}, {"name": "a\u2028b"}, {"name": "x" * 10_000},
    {"name": "声" * 41}, {"espeak_voice": "../../x"}, {"espeak_voice": "en us"}, {"espeak_voice": "ру"},
    {"espeak_voice": ""},
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD_OPTIONS, ids=lambda bad: repr(bad)[:40])
def test_absurd_options_are_refused_before_any_work(bad: dict[str, Any], tmp_path: Path) -> None:
    opts = options(tmp_path / "ds", tmp_path / "run", **bad)
    with pytest.raises(errors.ConfigError) as caught:
        run(opts)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["Голос", "veu catalana", "声" * 40, "a-b_c.d (2)", "x" * MAX_NAME_BYTES])
def test_non_ascii_and_long_voice_names_are_taken(name: str, tmp_path: Path) -> None:
    options(tmp_path / "ds", tmp_path / "run", name=name).validate()


def test_a_run_folder_with_a_line_break_is_refused_before_training(tmp_path: Path) -> None:
    # models/trained.py records runs one per line: found out after hours of training, the voices were lost.
    with pytest.raises(errors.ConfigError):
        options(tmp_path / "ds", tmp_path / "a\nb").validate()


def test_run_folder_inside_the_dataset_named_by_its_metadata_file(dataset: Path, tmp_path: Path) -> None:
    data = copy(dataset, tmp_path / "ds")
    for run_dir in (data / "run", data, data / "wavs" / "run", tmp_path):
        with pytest.raises(errors.OutputError):
            run(options(data / "metadata.csv", run_dir, max_steps=1))
    assert not (data / "run").exists() and not (data / "wavs" / "run").exists()


def test_a_second_run_into_a_busy_run_folder_is_refused(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    lock = OutputLock(run_dir / ".voxmill-train.lock", run_dir)  # what a running `voxmill train` holds
    lock.acquire()
    try:
        with pytest.raises(errors.OutputError, match="another voxmill run is writing here"):
            run(options(dataset, run_dir, max_steps=1))
    finally:
        lock.release()
    assert not (run_dir / "run.json").exists()


def test_resume_of_an_empty_folder_says_so(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    with pytest.raises(errors.ConfigError, match="nothing to resume"):
        run(options(dataset, tmp_path / "run", resume=True, max_steps=1))


# --- the dataset -----------------------------------------------------------------------------------


def test_not_a_dataset(dataset: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    only_val = copy(dataset, tmp_path / "only-val")
    (only_val / "metadata.csv").unlink()
    blank = copy(dataset, tmp_path / "blank")
    (blank / "metadata.csv").write_text("")
    (blank / "metadata_val.csv").write_text("")
    for path in (tmp_path / "empty", only_val, tmp_path / "nothing", Path("/etc/hostname")):
        with pytest.raises(errors.DatasetError, match="not a Piper dataset folder"):
            plan_of(path, tmp_path)
    with pytest.raises(errors.DatasetError, match="0 usable rows"):
        plan_of(blank, tmp_path)


def test_rows_that_cannot_train_are_left_out_and_counted(dataset: Path, tmp_path: Path) -> None:
    data = copy(dataset, tmp_path / "ds")
    outside = tmp_path / "elsewhere" / "wavs" / "clip0000.wav"
    outside.parent.mkdir(parents=True)
    shutil.copy(data / "wavs" / "clip0000.wav", outside)
    (data / "wavs" / "linked.wav").symlink_to(outside)
    rows = (data / "metadata.csv").read_text(encoding="utf-8").splitlines()
    speaker = rows[3].split("|")[1]
    rewrite(
        data / "metadata.csv",
        {
            0: f"../elsewhere/wavs/clip0000|{speaker}|escapes by '..'",
            1: f"{outside}|{speaker}|an absolute path out of the dataset",
            2: f"linked|{speaker}|a symlink out of the dataset",
            4: f"clip0004|{speaker}|" + "word " * 20_000,  # 100 kB: no clip's line
            5: f"clip0007|{speaker}|" + "x" * (MAX_TEXT_CHARS + 1),  # under the line limit, over any clip's text
            6: "clip0008||no speaker in a two-speaker set",
        },
    )
    plan = plan_of(data, tmp_path)
    left = len(rows) - len(plan.train)
    assert plan.skipped_rows == left == 6
    [warning] = [w for w in plan.warnings if "left out" in w]
    assert warning.startswith("6 rows cannot train") and "no speaker" in warning and "outside" in warning
    text, train_rows = trainer_csv(plan)
    read = list(csv.reader(io.StringIO(text), delimiter="|"))  # as piper's trainer reads it
    assert train_rows == len(plan.train) and len(read) == len(plan.train) + len(plan.val)
    assert len(plan.speakers) == 2
    assert all(len(fields) == 3 and fields[1] and not fields[0].startswith(("/", "..")) for fields in read)
    assert {fields[1] for fields in read} == set(plan.speakers)  # the trainer's speakers: the model's


def test_texts_with_delimiters_and_quotes_reach_the_trainer_whole(dataset: Path, tmp_path: Path) -> None:
    data = copy(dataset, tmp_path / "ds")
    texts = ['"He said | hi," she said.', 'Él va dir "hola" — així és.', "Он сказал: «да» | нет", '"', "中文|句子"]
    first = (data / "metadata.csv").read_text(encoding="utf-8").splitlines()
    from voxmill.corpus import join_fields

    rewrite(data / "metadata.csv", {i: join_fields([*first[i].split("|")[:2], t]).rstrip("\n") for i, t in
                                    enumerate(texts)})  # fmt: skip
    plan = plan_of(data, tmp_path)
    text, _ = trainer_csv(plan)
    read = [fields[-1] for fields in csv.reader(io.StringIO(text), delimiter="|")]
    assert read[: len(texts)] == texts and plan.skipped_rows == 0


def test_a_single_speaker_set_without_speakers_writes_no_speaker_column(dataset: Path, tmp_path: Path) -> None:
    data = copy(dataset, tmp_path / "ds")
    for table in ("metadata.csv", "metadata_val.csv"):
        lines = (data / table).read_text(encoding="utf-8").splitlines()
        (data / table).write_text("".join(f"{line.split('|')[0]}|{line.split('|')[2]}\n" for line in lines))
    plan = plan_of(data, tmp_path)
    assert plan.speakers == [] and plan.num_speakers == 1 and plan.skipped_rows == 0
    assert all(len(fields) == 2 for fields in csv.reader(io.StringIO(trainer_csv(plan)[0]), delimiter="|"))


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ("junk{", errors.DatasetError),
        ("[1, 2]", errors.ConfigError),  # no espeak voice
        ('{"espeak": {"voice": "en us; touch /tmp/x"}}', errors.ConfigError),
        ('{"espeak": {"voice": "../../etc/passwd"}}', errors.ConfigError),
        ('{"espeak": {"voice": "xx-nonesuch"}}', errors.ConfigError),  # espeak-ng has no such voice
        ("x" * (2 << 20), errors.DatasetError),  # a 2 MB "config" is not read whole
    ],
)
def test_a_junk_config_is_one_line(config: str, error: type[Exception], dataset: Path, tmp_path: Path) -> None:
    data = copy(dataset, tmp_path / "ds")
    (data / "config.json").write_text(config)
    with pytest.raises(error) as caught:
        plan_of(data, tmp_path)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


def test_config_numbers_that_cannot_be_are_not_used(dataset: Path, tmp_path: Path) -> None:
    data = copy(dataset, tmp_path / "ds")
    config = json.loads((data / "config.json").read_text(encoding="utf-8"))
    for symbols, rate in ((10, 0), (10**9, -5), (True, "22050")):
        config.update(num_symbols=symbols, audio={"sample_rate": rate})
        (data / "config.json").write_text(json.dumps(config))
        plan = plan_of(data, tmp_path)
        assert (plan.num_symbols, plan.sample_rate) == (256, 22050)  # the trainer's default, the clips' rate


# --- --from ----------------------------------------------------------------------------------------


def save_checkpoint(path: Path, hparams: dict[str, Any], **extra: Any) -> Path:
    import torch

    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": hparams, **extra}, path)
    return path


class Payload:
    """Unpickled, this would run ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_from_what_is_no_checkpoint_is_refused_and_runs_no_code(dataset: Path, tmp_path: Path) -> None:
    import pickle

    marker = tmp_path / "PWNED"
    payload = save_checkpoint(tmp_path / "payload.ckpt", {"sample_rate": 22050}, extra=Payload(marker))
    raw = tmp_path / "raw.ckpt"
    raw.write_bytes(pickle.dumps({"state_dict": {}, "x": Payload(marker)}))
    good = save_checkpoint(tmp_path / "good.ckpt", {"sample_rate": 22050})
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    for base in (payload, raw, truncated, junk):
        with pytest.raises(errors.DatasetError, match="not a readable checkpoint"):
            plan_of(dataset, tmp_path, base=base)
    with pytest.raises(errors.ConfigError, match="no such checkpoint file"):
        plan_of(dataset, tmp_path, base=tmp_path)  # a folder
    proc = voxmill("train", str(dataset), "-o", str(tmp_path / "run"), "--from", str(payload), "--no-check")
    no_traceback(proc)
    assert proc.returncode != 0 and "not a readable checkpoint" in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize(
    ("hparams", "match"),
    [
        ({"sample_rate": 16000}, "trained at 16000 Hz"),
        ({"sample_rate": "22050"}, "not a whole number"),
        ({"num_symbols": 10}, "10 symbols"),
        ({"num_symbols": 10**9}, "symbols"),  # an embedding of a billion rows would take the machine
        ({"hidden_channels": 10**7}, "hidden_channels"),
        ({"hidden_channels": 95}, "even"),
        ({"resblock": "../../x"}, "resblock"),
        ({"resblock": 1}, "resblock"),  # piper compares with "1": a number would build the other resblock
        ({"upsample_rates": "boom"}, "upsample_rates"),
        ({"upsample_rates": [8, 8, 2]}, "hop length"),
        ({"upsample_kernel_sizes": [16, 16]}, "upsample_kernel_sizes"),
        ({"resblock_dilation_sizes": [[1, 2]]}, "resblock_dilation_sizes"),
        ({"hop_length": 300}, "hop length"),
        ({"use_mrd": True}, "MRD"),
    ],
)
def test_from_a_checkpoint_whose_model_cannot_be_built(hparams: dict[str, Any], match: str, dataset: Path,
                                                        tmp_path: Path) -> None:  # fmt: skip
    base = save_checkpoint(tmp_path / "base.ckpt", {"sample_rate": 22050, "num_symbols": 256, **hparams})
    with pytest.raises(errors.ConfigError, match=match) as caught:
        plan_of(dataset, tmp_path, base=base)
    assert "\n" not in str(caught.value)


def test_the_default_architecture_is_the_trainers() -> None:
    from piper.train.vits.lightning import VitsModel

    defaults = inspect.signature(VitsModel.__init__).parameters
    plain = json.loads(json.dumps({key: defaults[key].default for key in DEFAULT_ARCHITECTURE}))
    assert plain == DEFAULT_ARCHITECTURE
    assert quality_of({**QUALITIES["x-low"], "upsample_rates": (8, 8, 4)}) == "x-low"
    assert quality_of({**QUALITIES["high"]}) == "high" and quality_of({"hidden_channels": 128}) is None


def test_a_checkpoint_keeps_its_own_quality(dataset: Path, tmp_path: Path) -> None:
    # An x-low base (tuples, as a model built in Python stores them) without --quality: labelled x-low, not medium.
    hparams = {"sample_rate": 22050, "num_symbols": 256, **DEFAULT_ARCHITECTURE, **QUALITIES["x-low"]}
    hparams = {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()}
    base = save_checkpoint(tmp_path / "base.ckpt", hparams)
    plan = plan_of(dataset, tmp_path, base=base)
    assert plan.quality == "x-low" and plan.architecture["hidden_channels"] == 96
    assert plan.architecture["upsample_rates"] == [8, 8, 4]  # a list: the child passes it as JSON
    plan = plan_of(dataset, tmp_path, base=base, quality="high")
    assert plan.quality == "x-low" and any("--quality high does not apply" in w for w in plan.warnings)
    # A run resumed without --quality keeps what it trained (its checkpoint's shape).
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    save_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt", {**hparams, **QUALITIES["high"],
                    "hidden_channels": 192, "inter_channels": 192, "filter_channels": 768}, global_step=4)  # fmt: skip
    plan = plan_of(dataset, tmp_path)
    assert plan.resume is not None and plan.quality == "high"
    assert plan_of(dataset, tmp_path / "fresh").quality == "medium"


# --- names -----------------------------------------------------------------------------------------


def test_a_dataset_folder_name_becomes_a_usable_voice_name(dataset: Path, tmp_path: Path) -> None:
    long = copy(dataset, tmp_path / ("数据" * 40))  # 240 bytes of name: no voice file could carry it
    plan = plan_of(long, tmp_path)
    assert plan.voice_name.startswith("数据") and len(plan.voice_name.encode()) <= MAX_NAME_BYTES
    assert any("the voice is named" in w for w in plan.warnings)
    odd = copy(dataset, tmp_path / ".a:b\\c")
    assert plan_of(odd, tmp_path).voice_name == "a_b_c"
    assert plan_of(dataset, tmp_path, name="Голос").voice_name == "Голос"


def test_two_datasets_with_one_name_are_told_apart(dataset: Path, tmp_path: Path) -> None:
    other_run = tmp_path / "other-run"
    other_run.mkdir()
    (other_run / "run.json").write_text(json.dumps({"voice_name": "ds", "dataset": "/elsewhere/ds"}))
    record_run(other_run)
    plan = plan_of(dataset, tmp_path)  # another folder named "ds"
    assert plan.voice_name == "ds" and any("also exports voices named ds-EPOCH" in w for w in plan.warnings)
    assert not any("also exports" in w for w in plan_of(dataset, tmp_path, name="ds-two").warnings)


# --- train-status ----------------------------------------------------------------------------------


def test_status_of_what_is_no_run(tmp_path: Path) -> None:
    cases = {"empty": None, "list": "[]", "junk": "xx{", "huge": "[" * (2 << 20)}
    for name, record in cases.items():
        (tmp_path / name).mkdir()
        if record is not None:
            (tmp_path / name / "run.json").write_text(record)
        with pytest.raises(errors.DatasetError):
            run_status(tmp_path / name)
        proc = voxmill("train-status", str(tmp_path / name))
        no_traceback(proc)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    (tmp_path / "dir" / "run.json").mkdir(parents=True)
    with pytest.raises(errors.DatasetError):
        run_status(tmp_path / "dir")


def test_status_of_a_torn_and_junk_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "voices" / "folder.onnx").mkdir(parents=True)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"half a checkpoint")
    (run_dir / "run.json").write_text(json.dumps({"dataset": "/d", "voice_name": "v", "quality": "x-low"}))
    (run_dir / "voices" / "v-0.onnx").write_bytes(b"")
    (run_dir / "voices" / "v-0.onnx.json").write_text('{"voxmill": {"step": "lots"}}')
    lines = [
        '{"epoch": 0, "step": 3, "val_mel": 2.5}',
        '{"epoch": 1, "step": 6, "val_mel": NaN, "loss_g": Infinity}',
        "x" * 200_000,  # a line no epoch writes: skipped, not held
        "[1, 2]",
        '{"epoch": 2, "step": 9, "val_mel": 2.0, "loss_g": 1',  # torn by a kill mid-write
    ]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines))
    status = run_status(run_dir)
    assert status["epochs"] == 2 and status["step"] == 6
    assert status["best"]["val_mel"] == 2.5 and status["latest"]["val_mel"] is None
    assert [v["name"] for v in status["voices"]] == ["piper:v-0"] and status["voices"][0]["step"] is None
    import torch

    torch.save({"state_dict": {}, "epoch": "x", "global_step": math.nan}, run_dir / "checkpoints" / "odd.ckpt")
    status = run_status(run_dir)
    said = {Path(c["path"]).name: c["error"] for c in status["checkpoints"]}
    assert "not a readable checkpoint" in said["last.ckpt"] and "not a Lightning checkpoint" in said["odd.ckpt"]
    proc = voxmill("train-status", str(run_dir), "--json")
    no_traceback(proc)
    assert proc.returncode == 0
    json.loads(proc.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    proc = voxmill("train-status", str(run_dir))
    assert proc.returncode == 0 and "best:   epoch 0 val_mel 2.5" in proc.stdout


# --- real training ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_non_ascii_single_speaker_run_rebuilds_its_cache_and_keeps_its_quality(dataset: Path, tmp_path: Path) -> None:
    data = copy(dataset, tmp_path / "数据 集")
    for table in ("metadata.csv", "metadata_val.csv"):  # one speaker: no speaker column at all
        lines = (data / table).read_text(encoding="utf-8").splitlines()
        (data / table).write_text("".join(f"{line.split('|')[0]}|{line.split('|')[2]}\n" for line in lines))
    rewrite(data / "metadata.csv", {0: 'clip0000|"""He said | hi,"" she said."'})  # csv-quoted
    config = json.loads((data / "config.json").read_text(encoding="utf-8"))
    config.update(num_speakers=1, speaker_id_map={})
    (data / "config.json").write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    run_dir = tmp_path / "Execució"

    first = run(options(data, run_dir, max_steps=1, quality="x-low", name="Голос", export=False, check=True))
    assert first.step == 1 and not first.interrupted
    trained = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    assert trained["num_speakers"] == 1 and not trained.get("speaker_id_map")
    assert '"He said | hi," she said.' in [r[-1] for r in csv.reader(io.StringIO(
        (run_dir / "trainer.csv").read_text(encoding="utf-8")), delimiter="|")]  # fmt: skip
    ids = [r[0] for r in csv.reader(io.StringIO((run_dir / "trainer.csv").read_text(encoding="utf-8")), delimiter="|")]
    row = ids.index("wavs/clip0002.wav") + 1  # the trainer names its cached tensors by row number
    [cached] = (run_dir / "cache").glob(f"{row}_*.audio.pt")
    before = cached.stat().st_mtime_ns

    # A clip replaced by another recording of the same name: the trainer must not train the old audio.
    shutil.copy(data / "wavs" / "clip0003.wav", data / "wavs" / "clip0002.wav")
    again = run(options(data, run_dir, max_steps=2, name="Голос", export=False))  # no --quality
    assert again.started_step == 1 and again.step == 2
    [cached] = (run_dir / "cache").glob(f"{row}_*.audio.pt")
    assert cached.stat().st_mtime_ns > before
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert record["quality"] == "x-low" and record["voice_name"] == "Голос"
    status = subprocess.run([sys.executable, "-m", "voxmill", "train-status", str(run_dir), "--json"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert status.returncode == 0 and json.loads(status.stdout)["step"] == 2


def test_a_run_folder_with_a_tilde_is_recorded_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `-o '~nosuchuser/run'` (quoted: the shell left it) trains into ./~nosuchuser/run; recording it must
    # neither raise after the training (no such home) nor name another folder (~ -> $HOME).
    monkeypatch.chdir(tmp_path)
    for written in ("~nosuchuser/run", "~/run"):
        (tmp_path / written).mkdir(parents=True)
        assert record_run(written) == tmp_path / written


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_run_whose_voices_cannot_be_written_exits_1(dataset: Path, tmp_path: Path) -> None:
    # Trained, every export failed: a script's `voxmill train ... && voxmill synth -v ...` must stop here.
    voices = tmp_path / "run" / "voices"
    voices.mkdir(parents=True)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(voices)]).returncode != 0:
        pytest.skip("needs chattr +i (root on ext4) to make a folder even root cannot write")
    try:
        proc = voxmill("train", str(dataset), "-o", str(tmp_path / "run"), "--max-steps", "1", "--batch-size", "4",
                       "--quality", "x-low", "--no-check")  # fmt: skip
    finally:
        subprocess.run(["chattr", "-i", str(voices)], check=True)
    no_traceback(proc)
    assert proc.returncode == 1 and "no voice was exported" in proc.stderr
    assert "export of last.ckpt failed" in proc.stderr and not list(voices.iterdir())
