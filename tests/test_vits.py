"""The Piper voice split into encoder + windowed decoder (models/loaders/vits.py), against the plain graph."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from voxmill.models import Registry
from voxmill.models.devices import session_options
from voxmill.models.loaders.onnx import providers_for
from voxmill.models.loaders.piper import load_piper
from voxmill.models.loaders.vits import WindowedVits, load_vits, split_folder

# Long enough for several 128-frame windows (~1.5 s each) in one sentence.
LONG = (
    "The miller walked along the river every morning before dawn, listening to the water turn the great "
    "wheel, counting the sacks of grain that the farmers had left at the door, and wondering whether the "
    "winter would be kind to the village this year."
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry(voices_dir="/nonexistent-voxmill-voices")


@pytest.fixture(scope="module")
def voices(registry: Registry) -> tuple[object, object]:
    from piper import PiperVoice

    spec = registry.get("piper:en_US-joe-medium")
    return PiperVoice.load(spec.path), load_piper(spec, "cpu", 1)


def _speak(voice: object, text: str) -> np.ndarray:
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    return np.concatenate([c.audio_float_array for c in voice.synthesize(text, config)])  # type: ignore[attr-defined]


@pytest.mark.parametrize("text", [LONG, "Yes.", "Wait, what?"])
def test_windowed_voice_speaks_the_same_samples_as_one_pass(voices: tuple[object, object], text: str) -> None:
    plain, windowed = voices
    session = windowed.session  # type: ignore[attr-defined]
    assert isinstance(session, WindowedVits)
    assert session.hop == 256
    assert session.context >= 11  # the decoder's receptive field here: ~11 latent frames each side
    expected, got = _speak(plain, text), _speak(windowed, text)
    assert got.shape == expected.shape
    # Only float rounding differs (2-D vs 1-D convolution kernels): far below audibility (-80 dBFS).
    assert float(np.abs(got - expected).max()) < 1e-4


def test_the_split_is_cached_once_per_model_file(registry: Registry, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VOXMILL_CACHE", str(tmp_path))
    spec = registry.get("piper:en_US-joe-medium")
    folder = split_folder(spec.path)
    assert folder.is_relative_to(tmp_path)
    load_vits(spec.path, session_options(1), providers_for("cpu"))
    assert sorted(p.name for p in folder.iterdir()) == ["decoder.onnx", "encoder.onnx", "split.json"]
    stamp = (folder / "split.json").stat().st_mtime_ns
    load_vits(spec.path, session_options(1), providers_for("cpu"))
    assert (folder / "split.json").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.rglob(".*") if p.is_dir()]  # no temporary folder left behind


def test_a_model_that_is_not_vits_runs_as_one_session(registry: Registry, tmp_path: Path, monkeypatch) -> None:
    import onnxruntime

    monkeypatch.setenv("VOXMILL_CACHE", str(tmp_path))
    vad = registry.get("silero-vad").path
    session = load_vits(vad, session_options(1), providers_for("cpu"))
    assert isinstance(session, onnxruntime.InferenceSession)


def test_an_unwritable_cache_falls_back_to_one_session(
    registry: Registry, tmp_path: Path, monkeypatch, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime

    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("VOXMILL_CACHE", str(blocker))
    spec = registry.get("piper:en_US-joe-medium")
    with caplog.at_level(logging.WARNING):
        session = load_vits(spec.path, session_options(1), providers_for("cpu"))
    assert isinstance(session, onnxruntime.InferenceSession)
    assert "cannot split the voice" in caplog.text
