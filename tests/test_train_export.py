"""Export a training checkpoint to a Piper voice, smoke-test it, and find run voices without copying.

The checkpoints are real: piper's own ``VitsModel`` (a small configuration: hidden/inter channels 96,
filter channels 384; ~7 M generator parameters) saved the way Lightning saves, without training. An
untrained voice babbles, which is all these tests need: the export, the files, the loaders and the
checks are what is under test, not the voice's quality.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from voxmill import errors
from voxmill.check.findings import Severity
from voxmill.models import ModelManager, Registry, VoiceConfig
from voxmill.models.speech import speak_text
from voxmill.models.trained import record_run, run_folders, runs_file
from voxmill.train.export import export_voice, language_code
from voxmill.train.smoke import SmokeCode, judge, smoke_test

pytest.importorskip("piper.train.vits.lightning")

EPOCH = 3
SPEAKERS = ["Анна", "Núria", "小明"]  # Russian, Catalan, Chinese speaker names survive the export


def _make_run(run: Path, num_speakers: int) -> Path:
    """A run folder as ``voxmill train`` leaves it: ``config.json`` and ``checkpoints/`` (one checkpoint)."""
    import torch
    from piper.train.vits.lightning import VitsModel

    torch.manual_seed(0)
    model = VitsModel(num_symbols=256, num_speakers=num_speakers, hidden_channels=96, inter_channels=96,
                      filter_channels=384, mos_metric=None)  # fmt: skip
    ckpt = run / "checkpoints" / f"epoch={EPOCH}-step=120.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "epoch": EPOCH,
                "global_step": 120, "pytorch-lightning_version": "2.6.6"}, ckpt)  # fmt: skip
    _write_config(run, num_speakers)
    return ckpt


def _write_config(run: Path, num_speakers: int) -> None:
    """The trainer's ``config.json``, as ``piper.train`` writes it (``PiperConfig.to_dict()``)."""
    from piper.config import PhonemeType, PiperConfig
    from piper.phoneme_ids import DEFAULT_PHONEME_ID_MAP

    speaker_map = {name: i for i, name in enumerate(SPEAKERS[:num_speakers])} if num_speakers > 1 else {}
    config = PiperConfig(num_symbols=256, num_speakers=num_speakers, sample_rate=22050, espeak_voice="en-us",
                         phoneme_id_map=DEFAULT_PHONEME_ID_MAP, phoneme_type=PhonemeType.ESPEAK,
                         speaker_id_map=speaker_map, piper_version="1.5.0")  # fmt: skip
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(config.to_dict(), ensure_ascii=False), encoding="utf-8")


def _export(run: Path, ckpt: Path, name: str, **kwargs: Any) -> Path:
    out = run / "voices" / f"{name}-{EPOCH}.onnx"
    return export_voice(ckpt, run / "config.json", out, voice_name=name, quality="medium", dataset="тест", **kwargs)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A single-speaker run folder with its checkpoint exported (the voice is ``голос-3``)."""
    run = tmp_path_factory.mktemp("run") / "прогон один"
    ckpt = _make_run(run, 1)
    _export(run, ckpt, "голос")
    return run


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("run") / "multi"
    ckpt = _make_run(run, len(SPEAKERS))
    # A temporary left by an export that was killed (its pid is gone) is cleaned up by the next one.
    (run / "voices").mkdir()
    (run / "voices" / f".chorus-{EPOCH}.onnx.999999999-dead.part").write_bytes(b"half")
    _export(run, ckpt, "chorus")
    return run


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never the real home: the run list and the voices folder live in tmp."""
    home = tmp_path / "data home"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.delenv("VOXMILL_VOICES_DIR", raising=False)
    return home


def _onnx(run: Path) -> Path:
    (onnx,) = (run / "voices").glob("*.onnx")
    return onnx


def test_the_fixture_checkpoint_is_what_lightning_loads(tmp_path: Path) -> None:
    from piper.train.vits.lightning import VitsModel

    ckpt = _make_run(tmp_path / "run", 1)
    model = VitsModel.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
    assert model.model_g.n_vocab == 256
    assert model.hparams.hidden_channels == 96


@pytest.mark.slow
def test_export_writes_a_voice_that_voxmill_and_piper_load(single: Path) -> None:
    from piper import PiperVoice, SynthesisConfig

    onnx = _onnx(single)
    assert onnx.name == f"голос-{EPOCH}.onnx"
    # Only the voice: no temporary left beside it.
    assert sorted(p.name for p in onnx.parent.iterdir()) == [onnx.name, onnx.name + ".json"]
    raw = json.loads((onnx.parent / (onnx.name + ".json")).read_text(encoding="utf-8"))
    assert raw["audio"] == {"sample_rate": 22050, "quality": "medium"}
    assert raw["dataset"] == "тест"
    assert raw["language"]["code"] == "en_US"
    assert raw["piper_version"] == "1.5.0"  # the trainer's: the config format it needs
    assert raw["num_symbols"] == 256 and raw["num_speakers"] == 1
    assert raw["voxmill"]["epoch"] == EPOCH and raw["voxmill"]["global_step"] == 120
    assert VoiceConfig.read(onnx.parent / (onnx.name + ".json")).quality == "medium"

    import onnx as onnx_lib

    graph = onnx_lib.load(str(onnx), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["input", "input_lengths", "scales"]
    assert [o.name for o in graph.output] == ["output"]
    assert any(n.name.startswith("/dec/") for n in graph.node)  # voxmill's loader splits the decoder there

    voice = PiperVoice.load(onnx)
    chunks = list(voice.synthesize("Hello there.", SynthesisConfig(normalize_audio=False)))
    assert sum(c.audio_float_array.size for c in chunks) > 0

    registry = Registry(voices_dir=single / "nowhere")
    spec = registry.resolve(onnx, kind="piper")
    manager = ModelManager(registry=registry, device="cpu")
    try:
        with manager.lease(spec) as loaded:
            assert type(loaded.session).__name__ == "WindowedVits"  # split like Piper's own voices
            audio = speak_text(loaded, "Hello there.", SynthesisConfig(normalize_audio=False))
    finally:
        manager.close()
    assert audio.size > 0 and np.isfinite(audio).all() and np.abs(audio).max() > 1e-3


@pytest.mark.slow
def test_smoke_test_and_check_model_pass(single: Path) -> None:
    result = smoke_test(_onnx(single))
    assert result.ok, result.message
    assert result.code is SmokeCode.OK
    assert 0.4 < result.seconds < 44 and result.peak > 1e-3 and 0 < result.rms <= result.peak
    assert result.findings, "check --model ran"
    assert {f.severity for f in result.findings} <= {Severity.PASS, Severity.INFO, Severity.WARN}
    assert {f.id for f in result.findings} >= {"voice.load", "voice.io", "voice.config", "voice.smoke"}
    assert json.loads(json.dumps(result.to_dict()))["code"] == "ok"


@pytest.mark.slow
def test_multi_speaker_export_has_sid_and_speaks_each_speaker(multi: Path) -> None:
    from piper import PiperVoice, SynthesisConfig

    onnx = _onnx(multi)
    assert not list((multi / "voices").glob("*.part")), "the stale temporary was removed"
    voice = PiperVoice.load(onnx)
    assert [i.name for i in voice.session.get_inputs()] == ["input", "input_lengths", "scales", "sid"]
    assert voice.config.num_speakers == len(SPEAKERS)
    assert dict(voice.config.speaker_id_map) == {name: i for i, name in enumerate(SPEAKERS)}
    for speaker in range(len(SPEAKERS)):
        audio = speak_text(voice, "Good morning.", SynthesisConfig(speaker_id=speaker, normalize_audio=False))
        assert audio.size > 0 and np.abs(audio).max() > 1e-3
    result = smoke_test(onnx)
    assert result.ok, result.message


def test_a_bad_trainer_config_is_refused_before_any_export(tmp_path: Path) -> None:
    (tmp_path / "model.ckpt").write_bytes(b"not read")
    (tmp_path / "config.json").write_text(json.dumps({"audio": {"sample_rate": 22050}}), encoding="utf-8")
    with pytest.raises(errors.ProcessingError) as caught:
        export_voice(tmp_path / "model.ckpt", tmp_path / "config.json", tmp_path / "v.onnx", voice_name="v",
                     quality="medium", dataset="d")  # fmt: skip
    assert caught.value.code is errors.Reason.CONFIG and "\n" not in str(caught.value)
    with pytest.raises(errors.ProcessingError) as caught:
        export_voice(tmp_path / "gone.ckpt", tmp_path / "config.json", tmp_path / "v.onnx", voice_name="v",
                     quality="medium", dataset="d")  # fmt: skip
    assert caught.value.code is errors.Reason.MISSING
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.ckpt"]


@pytest.mark.slow
def test_a_failed_export_says_why_in_one_line_and_leaves_nothing(single: Path, tmp_path: Path) -> None:
    config = json.loads((single / "config.json").read_text(encoding="utf-8"))
    config["num_symbols"] = 200  # disagrees with the checkpoint's 256: the voice would fail at its first word
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (ckpt,) = (single / "checkpoints").glob("*.ckpt")
    out = tmp_path / "voices" / "v-3.onnx"
    with pytest.raises(errors.ProcessingError) as caught:
        export_voice(ckpt, tmp_path / "config.json", out, voice_name="v", quality="medium", dataset="d")
    message = str(caught.value)
    assert "\n" not in message and "256 symbols" in message and "200" in message, message
    assert caught.value.code is errors.Reason.PROCESSING
    assert list(out.parent.iterdir()) == []


def test_an_export_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write_config(run, 1)
    (run / "model.ckpt").write_bytes(b"never read: the child is stopped while it imports torch")
    out = run / "voices" / "v-3.onnx"
    with pytest.raises(errors.ProcessingError) as caught:
        export_voice(run / "model.ckpt", run / "config.json", out, voice_name="v", quality="medium", dataset="d",
                     timeout_s=0.5)  # fmt: skip
    assert caught.value.code is errors.Reason.TIMEOUT
    assert list(out.parent.iterdir()) == []


def test_language_codes_from_espeak_voices() -> None:
    assert language_code("en-us") == "en_US"
    assert language_code("pt-br") == "pt_BR"
    assert language_code("en-gb-x-rp") == "en_GB"
    assert language_code("ru") == "ru"
    assert language_code("cmn") == "cmn"


@pytest.mark.parametrize(
    ("audio", "code"),
    [
        (np.zeros(0, np.float32), SmokeCode.EMPTY),
        (np.zeros(22050 * 2, np.float32), SmokeCode.SILENT),
        (np.full(22050 * 2, np.nan, np.float32), SmokeCode.NON_FINITE),
        (np.full(100, 0.3, np.float32), SmokeCode.TOO_SHORT),
        (np.full(22050 * 600, 0.3, np.float32), SmokeCode.TOO_LONG),  # ten minutes for one sentence
        (np.full(22050 * 2, 0.3, np.float32), SmokeCode.OK),
    ],
)
def test_smoke_bounds(audio: np.ndarray, code: SmokeCode) -> None:
    result = judge("v.onnx", audio, 22050, 44)
    assert result.code is code and result.ok is (code is SmokeCode.OK), result.message


def test_smoke_test_reports_a_missing_voice(tmp_path: Path) -> None:
    result = smoke_test(tmp_path / "nothing.onnx")
    assert not result.ok and result.code is SmokeCode.LOAD


# ---- run voices found in place ---------------------------------------------------------------------


def test_record_run_deduplicates_and_keeps_non_ascii_names(data_home: Path, tmp_path: Path) -> None:
    runs = [tmp_path / name for name in ("запуск", "execució", "训练", "line\u2028sep")]
    for run in runs:
        run.mkdir()
        record_run(run)
    record_run(runs[0])  # again: once, and now last
    assert run_folders() == [*runs[1:], runs[0]]
    assert runs_file() == data_home / "voxmill" / "train-runs.txt"
    assert runs_file().read_text(encoding="utf-8").count("запуск") == 1
    with pytest.raises(errors.ConfigError):
        record_run(tmp_path / "two\nlines")


_RECORD_ALL = "import sys; from voxmill.models.trained import record_run; [record_run(f) for f in sys.argv[1:]]"


def test_two_writers_lose_no_run(data_home: Path, tmp_path: Path) -> None:
    folders = [tmp_path / f"запуск {i}" for i in range(40)]
    for folder in folders:
        folder.mkdir()
    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    writers = [subprocess.Popen([sys.executable, "-c", _RECORD_ALL, *map(str, folders[k::2])], env=env)
               for k in range(2)]  # fmt: skip
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    assert sorted(run_folders()) == sorted(folders)


@pytest.mark.slow
def test_a_recorded_runs_voices_are_found_without_copying(single: Path, data_home: Path) -> None:
    from voxmill.synth.voice import resolve_voice

    with pytest.raises(errors.ModelNotFound):
        Registry().get(f"piper:голос-{EPOCH}")  # not recorded yet
    record_run(single)
    spec = Registry().get(f"piper:голос-{EPOCH}")
    assert spec.path == _onnx(single) and spec.source == f"train run {single}"
    assert any(s.name == f"piper:голос-{EPOCH}" for s in Registry().all("piper"))
    assert resolve_voice(f"голос-{EPOCH}").path == _onnx(single)  # what synth -v does

    env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
    env.pop("VOXMILL_VOICES_DIR", None)
    listed = subprocess.run([sys.executable, "-m", "voxmill", "voices", "--json"], capture_output=True, text=True,
                            env=env, check=True)  # fmt: skip
    rows = {row["name"]: row for row in map(json.loads, listed.stdout.splitlines())}
    assert rows[f"piper:голос-{EPOCH}"]["path"] == str(_onnx(single))
    assert rows[f"piper:голос-{EPOCH}"]["source"] == f"train run {single}"

    # synth finds it by name, and speaks with it.
    out = data_home / "said.wav"
    subprocess.run([sys.executable, "-m", "voxmill", "--quiet", "synth", "Hello there.", "-v",
                    f"piper:голос-{EPOCH}", "-o", str(out)], env=env, check=True, capture_output=True)  # fmt: skip
    samples, rate = sf.read(out)
    assert rate == 22050 and samples.size > 0


@pytest.mark.slow
def test_the_users_voices_folder_wins_a_name_clash(single: Path, data_home: Path) -> None:
    record_run(single)
    mine = data_home / "voxmill" / "voices"
    mine.mkdir(parents=True)
    for path in (single / "voices").iterdir():
        shutil.copy(path, mine / path.name)
    spec = Registry().get(f"piper:голос-{EPOCH}")
    assert spec.path.parent == mine and spec.source.startswith("voices dir")


def test_a_deleted_run_folder_is_dropped_silently(data_home: Path, tmp_path: Path) -> None:
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    for run in (kept, gone):
        (run / "voices").mkdir(parents=True)
        record_run(run)
    shutil.rmtree(gone)
    assert run_folders() == [kept]
    assert Registry().all("piper")  # discovery works (the installed voices), no error for the gone run
    assert not Registry().broken("piper")
    record_run(kept)
    assert str(gone) not in runs_file().read_text(encoding="utf-8")
