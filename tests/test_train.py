"""``voxmill train`` with piper's real trainer on CPU: the gate, fit, Ctrl-C, resume, export, smoke test,
fine-tuning a single-speaker base on a two-speaker set, and the run folder's status.

Kept short: 16 clips of the bundled voice (2 "speakers"), prepared with 4 validation clips; piper's
x-low model (hidden/inter 96, filter 384: the trainer's smallest), batch 4 (3 steps per epoch).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from prepared import prepared_dataset
from voxmill import errors
from voxmill.check import CheckOptions
from voxmill.check import run as check
from voxmill.engine import RunOptions
from voxmill.train import NotReady, TrainOptions, run, run_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SERIAL = RunOptions(workers=1, backend="serial", progress=False)
VOXMILL = [sys.executable, "-m", "voxmill"]


@pytest.fixture(scope="module")
def dataset(speech_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A non-ASCII dataset (and so voice) name.
    return prepared_dataset(speech_cache, tmp_path_factory.mktemp("train") / "набор", 16, val_fraction=0.25)


def options(dataset: Path, run_dir: Path, **kwargs: object) -> TrainOptions:
    base = {"batch_size": 4, "quality": "x-low", "quiet": True, "run": SERIAL}
    base.update(kwargs)
    return TrainOptions(dataset, run_dir, **base)  # type: ignore[arg-type]


def test_gate_stops_a_broken_dataset(dataset: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(dataset, broken)
    next((broken / "wavs").glob("*.wav")).unlink()  # a row whose audio is gone
    with pytest.raises(NotReady) as caught:
        run(options(broken, tmp_path / "run", max_steps=1))
    assert "report.html" in str(caught.value) and "metadata.missing_audio" in str(caught.value)
    assert (tmp_path / "run" / "check" / "report.html").is_file()
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained


def test_refuses_what_cannot_work(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(errors.OutputError):
        run(options(dataset, dataset / "run", max_steps=1))  # the run folder inside the dataset
    with pytest.raises(errors.ConfigError):
        run(options(dataset, tmp_path / "run", max_steps=0))
    with pytest.raises(errors.ConfigError):
        run(options(dataset, tmp_path / "run", resume=True, max_steps=1, check=False))  # nothing to resume


def _wait_for(proc: subprocess.Popen[str], text: str, timeout: float) -> list[str]:
    """Read the process's stderr on a thread until a line holds ``text``; the lines read so far (growing)."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if text in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        raise AssertionError(f"never printed {text!r}: {''.join(lines)[-2000:]}")
    return lines


def test_fit_interrupt_resume_export(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = dict(os.environ)  # conftest points XDG_DATA_HOME (where runs are recorded) at a temp folder
    # Ctrl-C after the first step: a checkpoint is saved, the exit code says interrupted.
    proc = subprocess.Popen(
        [*VOXMILL, "train", str(dataset), "-o", str(run_dir), "--max-steps", "4", "--batch-size", "4",
         "--quality", "x-low", "--no-check"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines = _wait_for(proc, "first step done", 300)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=300) == 130, "".join(lines)[-2000:]
    status = run_status(run_dir)
    [last] = [c for c in status["checkpoints"] if c["path"].endswith("last.ckpt")]
    stopped_at = last["step"]
    assert stopped_at >= 1 and last["resumable"]
    assert not list((run_dir / "voices").glob("*.onnx"))  # no export after Ctrl-C

    # The same command again resumes from that step, stops at 4, exports the best and last checkpoints.
    result = run(options(dataset, run_dir, max_steps=4))
    assert result.started_step == stopped_at and result.step == 4 and not result.interrupted
    assert result.voices and all(v.smoke_ok for v in result.voices), result.voices
    voice = result.voices[-1]
    assert voice.onnx.parent == run_dir / "voices" and voice.name.startswith("набор-")

    # synth finds the voice by name where it lies (no copy), and it speaks: not silent, plausible length.
    wav = tmp_path / "said.wav"
    said = subprocess.run(
        [*VOXMILL, "synth", "The birch canoe slid on the smooth planks.", "-v", f"piper:{voice.name}",
         "-o", str(wav)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert said.returncode == 0, said.stderr[-2000:]
    audio, rate = sf.read(wav)
    assert 0.5 < len(audio) / rate < 30 and float(np.sqrt(np.mean(np.square(audio)))) > 1e-4
    listed = subprocess.run([*VOXMILL, "voices"], capture_output=True, text=True, env=env, timeout=120)
    assert f"piper:{voice.name}" in listed.stdout

    # check: the exported voice passes --model; the checkpoint is READY against the dataset it trained on.
    report = check(CheckOptions(dataset, checkpoint=run_dir / "checkpoints" / "last.ckpt", models=[voice.onnx],
                                run=SERIAL))  # fmt: skip
    fails = [f"{f.id}: {f.message}" for f in report.findings if f.severity.value == "FAIL"]
    assert report.ready, fails

    status = run_status(run_dir)
    assert status["step"] == 4 and status["epochs"] >= 1 and status["best"]["val_mel"] > 0
    assert {v["name"] for v in status["voices"]} >= {f"piper:{v.name}" for v in result.voices}
    printed = subprocess.run([*VOXMILL, "train-status", str(run_dir), "--json"], capture_output=True, text=True)
    assert json.loads(printed.stdout)["step"] == 4

    # Nothing left to do: a rerun resumes at 4, trains nothing, exports nothing new.
    again = run(options(dataset, run_dir, max_steps=4, check=False))
    assert again.started_step == 4 and again.step == 4


def test_fine_tune_single_speaker_base_on_two_speakers(dataset: Path, tmp_path: Path) -> None:
    import lightning
    import torch
    from piper.train.vits.lightning import VitsModel

    base = tmp_path / "base.ckpt"
    model = VitsModel(num_symbols=256, num_speakers=1, hidden_channels=96, inter_channels=96, filter_channels=384)
    torch.save(
        {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "epoch": 9, "global_step": 40,
         "pytorch-lightning_version": lightning.__version__},
        base,
    )  # fmt: skip
    result = run(options(dataset, tmp_path / "run", base=base, max_steps=1, check=False, export=False))
    assert result.step == 1 and result.started_step == 0
    assert any("speaker embedding starts fresh" in w for w in result.warnings)
    assert result.warm_start is not None and 0 < result.warm_start["copied"] < result.warm_start["total"]
    assert "emb_g" in " ".join(result.warm_start["fresh"])
    log = (tmp_path / "run" / "logs" / "trainer.log").read_text(encoding="utf-8")
    assert "Traceback" not in log
