"""Shared fixtures: real speech synthesized once with the bundled Piper voice, cached between runs."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from make_demo_audio import SENTENCES, synthesize_speech
from make_demo_corpus import write_corpus

from voxmill.audio import Audio


@pytest.fixture(scope="session")
def corpus(request: pytest.FixtureRequest) -> Path:
    """12 clips, two speakers, LJSpeech layout; cached between runs (the speech is deterministic)."""
    cache = Path(request.config.cache.mkdir("voxmill-corpus")) / "v1"
    if not (cache / "metadata.csv").exists():
        tmp = cache.with_name("v1.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        write_corpus(tmp, 12)
        shutil.rmtree(cache, ignore_errors=True)
        tmp.rename(cache)
    return cache


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XDG_DATA_HOME in a temp folder: training runs recorded by tests (models/trained.py) never reach the
    user's ~/.local/share, and the user's recorded runs never add voices to a test's listing."""
    folder = tmp_path_factory.mktemp("xdg-data")
    os.environ["XDG_DATA_HOME"] = str(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def model_cache(request: pytest.FixtureRequest) -> Path:
    """Split voices (models/loaders/vits.py) cached in .pytest_cache, not the user's ~/.cache;
    subprocesses the tests start inherit it."""
    folder = Path(request.config.cache.mkdir("voxmill-models"))
    os.environ["VOXMILL_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def speech_cache(request: pytest.FixtureRequest) -> Path:
    return Path(request.config.cache.mkdir("voxmill-speech"))


@pytest.fixture(scope="session")
def synth(speech_cache: Path) -> Callable[[str], Audio]:
    """Speak ``text`` with en_US-joe-medium (deterministic); results cached as float WAV on disk."""

    def speak(text: str) -> Audio:
        key = hashlib.sha1(text.encode()).hexdigest()[:16]
        path = speech_cache / f"{key}.wav"
        if not path.exists():
            samples, sr = synthesize_speech(text)
            tmp = path.with_suffix(".tmp.wav")
            sf.write(tmp, samples, sr, subtype="FLOAT")
            tmp.replace(path)
        data, sr = sf.read(path, dtype="float32")
        return Audio(data, sr)

    return speak


@pytest.fixture(scope="session")
def speech(synth: Callable[[str], Audio]) -> Audio:
    """About 15 s of real speech at 22050 Hz, peak -6 dBFS."""
    return synth(" ".join(SENTENCES))


@pytest.fixture(scope="session")
def short_speech(synth: Callable[[str], Audio]) -> Audio:
    return synth(SENTENCES[0])


def sine(freq: float, sr: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
