"""``voxmill train``'s process life under attack: kills, signals, checkpoints, export.

A kill -9 of ``voxmill train`` leaves a trainer that saves and stops by itself, holding the run's lock
until it has; a resumed run stopped before it trained keeps its last.ckpt; SIGTERM stops with a
checkpoint (exit 130); a killed trainer is one line; a killed save, export or cache write leaves no
half file under a final name and no temporaries; a killed export is done once, by the next run.

The slow test trains for real (x-low, batch 4, one step per run); the rest reads real checkpoints and
drives the real trainer classes without training.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from prepared import prepared_dataset
from voxmill import errors
from voxmill.engine import RunOptions
from voxmill.engine.guards import OutputLock
from voxmill.train import TrainOptions, run
from voxmill.train.checkpoints import read_checkpoint, resumable
from voxmill.train.progress import TrainProgress
from voxmill.train.run import TrainResult, _exported_step, _Exporter

pytest.importorskip("piper.train.vits.lightning")

SERIAL = RunOptions(workers=1, backend="serial", progress=False)
DEAD_PID = 999_999_999  # above any pid_max: a temporary of a process that is gone


@pytest.fixture(scope="module")
def dataset(speech_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 12 training clips of two speakers (3 steps per epoch at batch 4), 4 validation clips.
    return prepared_dataset(speech_cache, tmp_path_factory.mktemp("life") / "голоса", 16, val_fraction=0.25)


def options(dataset: Path, run_dir: Path, **kwargs: Any) -> TrainOptions:
    values: dict[str, Any] = {"batch_size": 4, "quality": "x-low", "quiet": True, "run": SERIAL, "check": False}
    values.update(kwargs)
    return TrainOptions(dataset, run_dir, **values)


def lightning_checkpoint(path: Path, **fields: Any) -> Path:
    """A checkpoint as Lightning writes one for piper's model (a small one), through torch.save."""
    import collections

    import torch

    state = collections.OrderedDict([("model_g.emb.weight", torch.zeros(4, 3)), ("model_d.w", torch.ones(2))])
    value: dict[str, Any] = {
        "epoch": 3,
        "global_step": 24,
        "pytorch-lightning_version": "2.6.0",
        "state_dict": state,
        "loops": {"fit_loop": {"epoch_progress": {"total": {"completed": 3}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_mel'}": {"best_model_path": "x", "best_k_models": {}}},
        "optimizer_states": [{"state": {0: {"step": torch.tensor(12.0), "exp_avg": torch.zeros(3)}}}] * 2,
        "lr_schedulers": [{"last_epoch": 3}],
        "hyper_parameters": {"sample_rate": 22050, "num_speakers": 2, "hidden_channels": 96,
                             "upsample_rates": [8, 8, 2, 2], "resblock": "2"},
    }  # fmt: skip
    value.update(fields)
    torch.save(value, path)
    return path


# ---- checkpoints: read without torch, and nothing in them runs ---------------------------------------


def test_checkpoint_metadata_is_read_without_torch_and_matches_torch(tmp_path: Path) -> None:
    ckpt = lightning_checkpoint(tmp_path / "last.ckpt")
    script = (
        "import json, sys; from pathlib import Path; from voxmill.train.checkpoints import read_checkpoint; "
        f"i = read_checkpoint(Path({str(ckpt)!r})); "
        "print(json.dumps([i.epoch, i.global_step, i.step, i.optimizers, i.hparams, 'torch' in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    epoch, global_step, step, optimizers, hparams, torch_loaded = json.loads(done.stdout)
    assert (epoch, global_step, step, optimizers) == (3, 24, 12, 2)
    assert hparams["upsample_rates"] == [8, 8, 2, 2] and hparams["sample_rate"] == 22050
    assert torch_loaded is False  # a resumed run's parent stays small while the child trains

    import torch

    by_torch = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert by_torch["hyper_parameters"] == read_checkpoint(ckpt).hparams


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_or_lies_is_refused_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    payload = lightning_checkpoint(folder / "payload.ckpt", hyper_parameters={"x": _Payload(marker)})
    nonsense = [
        lightning_checkpoint(folder / "word.ckpt", epoch="x"),
        lightning_checkpoint(folder / "negative.ckpt", global_step=-2),
        lightning_checkpoint(folder / "nan.ckpt", global_step=float("nan")),
        lightning_checkpoint(folder / "flag.ckpt", epoch=True),
    ]
    with pytest.raises(errors.DatasetError, match="not a readable checkpoint") as caught:
        read_checkpoint(payload)
    assert "\n" not in str(caught.value) and not marker.exists()
    for path in nonsense:
        with pytest.raises(errors.DatasetError, match="not a Lightning checkpoint") as caught:
            read_checkpoint(path)
        assert "\n" not in str(caught.value)
    # A run folder holding only these resumes from none of them, with a warning for each.
    info, skipped = resumable(folder)
    assert info is None and len(skipped) == 5 and not marker.exists()


def test_a_voice_says_which_step_it_holds(tmp_path: Path) -> None:
    onnx = tmp_path / "v-0.onnx"
    onnx.write_bytes(b"")
    config = onnx.with_name(onnx.name + ".json")
    config.write_text(json.dumps({"voxmill": {"step": 7, "global_step": 14}}), encoding="utf-8")
    assert _exported_step(onnx) == 7
    # A voice exported before the step was recorded (by a run killed before it could note it).
    config.write_text(json.dumps({"voxmill": {"global_step": 14}}), encoding="utf-8")
    assert _exported_step(onnx) == 7
    config.write_text(json.dumps({"voxmill": {"step": "lots"}}), encoding="utf-8")
    assert _exported_step(onnx) is None


def test_periodic_checkpoints_whose_export_fails_do_not_pile_up(tmp_path: Path) -> None:
    """An export that fails every time (a broken exporter, a full voices disk) during --export-every used
    to keep one ~700 MB checkpoint per epoch: the newest is kept for the next run to retry."""
    folder = tmp_path / "checkpoints" / "to-export"
    folder.mkdir(parents=True)
    result = TrainResult(run_dir=tmp_path)
    exporter = _Exporter(None, {}, result, TrainProgress(enabled=False))  # type: ignore[arg-type]
    for epoch in range(3):
        (folder / f"epoch={epoch}.ckpt").write_bytes(b"not a checkpoint")
        exporter.submit(folder / f"epoch={epoch}.ckpt", remove_after=True)
    exporter.finish()
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=2.ckpt"]
    assert len(result.warnings) == 3 and all("\n" not in w for w in result.warnings)


# ---- the trainer's classes, without training -----------------------------------------------------------


@pytest.fixture(scope="module")
def trainer_classes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[Any]]:
    from voxmill.train.child import _build_classes

    folder = tmp_path_factory.mktemp("classes")
    spec = {"checkpoints": str(folder / "checkpoints"), "metrics_path": str(folder / "metrics.jsonl"),
            "mos": False, "export_every": 1, "base": None, "resume_from": None}  # fmt: skip
    datamodule, _cli, callbacks, _plugins = _build_classes(spec)
    return datamodule, callbacks


def test_export_every_one_epoch_can_be_checkpointed(trainer_classes: tuple[Any, list[Any]]) -> None:
    # --export-every 1 made the trainer stop at once: its checkpoint callback had last.ckpt's state key.
    from lightning.pytorch.callbacks import ModelCheckpoint

    keys = [c.state_key for c in trainer_classes[1] if isinstance(c, ModelCheckpoint)]
    assert len(keys) == 3 and len(set(keys)) == 3, keys


def test_the_trainer_cache_and_config_are_whole_files(
    trainer_classes: tuple[Any, list[Any]], dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """piper writes its cache in place and trusts any file that exists: a write cut short (a kill, a full
    disk) used to fail some later step of every rerun with 'your checkpoint file is corrupted'."""
    import torch

    rows = [line.split("|") for line in (dataset / "metadata.csv").read_text(encoding="utf-8").splitlines()]
    csv_path = tmp_path / "trainer.csv"
    csv_path.write_text("".join(f"wavs/{r[0]}.wav|{r[1]}|{r[2]}\n" for r in rows), encoding="utf-8")
    cache, config = tmp_path / "cache", tmp_path / "config.json"
    module = trainer_classes[0](csv_path=csv_path, cache_dir=cache, espeak_voice="en-us", config_path=config,
                                voice_name="v", audio_dir=dataset, num_speakers=2, trim_silence=False)  # fmt: skip
    real_save = torch.save
    calls = {"n": 0}

    def failing_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # half a tensor written, then the disk is full
            Path(f).write_bytes(b"PK\x03\x04 half")
            raise OSError(28, "No space left on device")
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        module.prepare_data()
    assert torch.save is failing_save  # what was there before is put back
    names = sorted(p.name for p in cache.iterdir())
    assert not [n for n in names if n.startswith(".")], names  # no temporary left
    for path in cache.glob("*.pt"):
        torch.load(path, weights_only=True)  # every tensor under its final name is whole
    assert not config.exists()  # the config is renamed into place when the data is ready, not before
    monkeypatch.setattr(torch, "save", real_save)
    module.prepare_data()  # the rerun completes the cache
    assert len(list(cache.glob("*.spec.pt"))) == len(rows) and json.loads(config.read_text())["num_speakers"] == 2


# ---- the display ---------------------------------------------------------------------------------------


class _GoneOutput(io.StringIO):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def write(self, text: str) -> int:
        raise self.error


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), SystemExit(1)])
def test_an_output_that_went_away_does_not_stop_training(error: BaseException) -> None:
    # A closed terminal (EIO), or a pipe whose reader left (rich answers that with SystemExit).
    progress = TrainProgress(enabled=True)
    progress.console.file = _GoneOutput(error)
    with progress:
        progress.say("warning: something")
        progress.show({"event": "epoch", "epoch": 0, "batches": 3})
        progress.show({"event": "batch", "step": 1, "loss_g": 1.0, "loss_d": 2.0})
    assert progress.quiet


# ---- real training, killed and signalled -----------------------------------------------------------------


class Train:
    """``voxmill train`` in a subprocess, its stderr read on a thread."""

    def __init__(self, dataset: Path, run_dir: Path, *flags: str) -> None:
        command = [sys.executable, "-m", "voxmill", "train", str(dataset), "-o", str(run_dir), "--batch-size", "4",
                   "--quality", "x-low", "--no-check", *flags]  # fmt: skip
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.out = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, test: Callable[[], bool], what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not test():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never {what}: rc {self.proc.poll()}, {''.join(self.lines)[-2000:]}")
            time.sleep(0.05)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def child(self, module: str) -> psutil.Process:
        found: list[psutil.Process] = []

        def look() -> bool:
            with_cmd = []
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                try:
                    with_cmd.append((p, " ".join(p.cmdline())))
                except psutil.Error:
                    continue
            found[:] = [p for p, cmd in with_cmd if f"-m {module}" in cmd]
            return bool(found)

        self.wait_for(look, f"started {module}")
        return found[0]

    def finish(self, timeout: float = 600) -> int:
        code = self.proc.wait(timeout=timeout)
        assert self.proc.stdout is not None
        self.out = self.proc.stdout.read()
        time.sleep(0.2)  # the reader thread has the last lines
        return code


def _gone(process: psutil.Process, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        return False
    return True


def _temporaries(run_dir: Path) -> list[str]:
    return [str(p.relative_to(run_dir)) for p in run_dir.rglob(".*") if p.name != ".voxmill-train.lock"]


def _step(run_dir: Path) -> int:
    return read_checkpoint(run_dir / "checkpoints" / "last.ckpt").step


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_kills_and_signals_keep_every_step_and_leave_no_half_file(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "прогон"
    last = run_dir / "checkpoints" / "last.ckpt"
    log = run_dir / "logs" / "trainer.log"

    # 1. kill -9 of `voxmill train` mid-step: the trainer notices, saves, stops; until it has, it holds
    #    the run's lock (a rerun meanwhile would start a second trainer on the same files).
    train = Train(dataset, run_dir, "--max-steps", "30")
    trainer = train.child("voxmill.train.child")
    train.wait_for(lambda: train.said("first step done"), "stepped")
    train.proc.kill()
    assert trainer.is_running()
    with pytest.raises(errors.OutputError, match="another voxmill run"):
        OutputLock(run_dir / ".voxmill-train.lock", run_dir).acquire()
    assert _gone(trainer, 120), "the trainer went on training with nobody reading it"
    train.finish()
    saved = _step(run_dir)
    assert saved >= 1 and not _temporaries(run_dir)

    # 2. A resumed run killed before it trained (while the trainer prepares and restores): last.ckpt stays
    #    what it was. It used to be overwritten by the fresh, untrained model.
    before = last.stat().st_mtime_ns
    logged = log.stat().st_size
    train = Train(dataset, run_dir, "--max-steps", "30")
    trainer = train.child("voxmill.train.child")
    train.wait_for(lambda: b"GPU available" in log.read_bytes()[logged:], "built the trainer")
    train.proc.kill()
    assert _gone(trainer, 120)
    train.finish()
    assert _step(run_dir) == saved and last.stat().st_mtime_ns == before

    # 3. SIGTERM (a service manager stopping it) is a Ctrl-C: a checkpoint, one line, exit 130.
    train = Train(dataset, run_dir, "--max-steps", "30")
    train.wait_for(lambda: train.said("first step done"), "stepped")
    train.proc.send_signal(signal.SIGTERM)
    assert train.finish() == 130, "".join(train.lines)[-2000:]
    assert train.said("is saved in") and not train.said("Traceback")
    assert _step(run_dir) > saved
    saved = _step(run_dir)

    # 4. kill -9 of the trainer: one line that says so, exit 1; nothing half-written.
    train = Train(dataset, run_dir, "--max-steps", "30")
    trainer = train.child("voxmill.train.child")
    train.wait_for(lambda: train.said("first step done"), "stepped")
    trainer.kill()
    assert train.finish() == 1
    said = [line for line in train.lines if line.startswith("voxmill:")]
    assert len(said) == 1 and "killed by signal 9" in said[0] and "rerun to resume" in said[0], train.lines
    assert not train.said("Traceback") and not _temporaries(run_dir) and _step(run_dir) == saved

    # 5. What killed runs leave: a periodic checkpoint not yet exported (it is, once), and temporaries of
    #    dead writers (removed; the half checkpoint is never exported). The goal is reached: no training.
    to_export = run_dir / "checkpoints" / "to-export"
    to_export.mkdir(exist_ok=True)
    os.link(last, to_export / "epoch=0.ckpt")
    planted = [run_dir / "checkpoints" / f".last.{DEAD_PID}-deadbeef.tmp.ckpt",
               to_export / f".epoch=1.{DEAD_PID}-deadbeef.tmp.ckpt",
               run_dir / "cache" / f".1_0_x.spec.{DEAD_PID}-deadbeef.tmp.pt",
               run_dir / "voices" / f".голоса-0.onnx.{DEAD_PID}-deadbeef.tmp.json"]  # fmt: skip
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PK\x03\x04 half")
    result = run(options(dataset, run_dir, max_steps=saved))
    assert result.started_step == saved == result.step and not result.interrupted
    assert [(v.step, v.smoke_ok) for v in result.voices] == [(saved, True)], result.voices
    voice = result.voices[0]
    assert not list(to_export.iterdir()) and not _temporaries(run_dir)
    made = json.loads(voice.onnx.with_name(voice.onnx.name + ".json").read_text(encoding="utf-8"))
    assert made["voxmill"]["step"] == saved
    dataset_speakers = json.loads((dataset / "config.json").read_text(encoding="utf-8"))["speaker_id_map"]
    assert made["num_speakers"] == 2 and made["speaker_id_map"] == dataset_speakers

    from piper import PiperVoice, SynthesisConfig

    piper_voice = PiperVoice.load(voice.onnx)
    for speaker in range(2):
        chunks = piper_voice.synthesize("Good morning.", SynthesisConfig(speaker_id=speaker))
        assert sum(c.audio_float_array.size for c in chunks) > 0

    # 6. kill -9 of `voxmill train` while it exports: the export stops too (no half voice, no temporary),
    #    and the next run exports those weights once, under the same name (not a second `-stepN` voice).
    for path in (voice.onnx, voice.onnx.with_name(voice.onnx.name + ".json")):
        path.unlink()
    train = Train(dataset, run_dir, "--max-steps", str(saved))
    exporter = train.child("voxmill.train.export")
    time.sleep(1.0)
    assert exporter.is_running()
    train.proc.kill()
    assert _gone(exporter, 30), "the export went on with nobody to record it"
    train.finish()
    assert not list((run_dir / "voices").iterdir())
    again = run(options(dataset, run_dir, max_steps=saved))
    assert [(v.name, v.step) for v in again.voices] == [(voice.name, saved)]
    assert sorted(p.name for p in (run_dir / "voices").iterdir()) == [voice.onnx.name, voice.onnx.name + ".json"]
