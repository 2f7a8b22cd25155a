"""The final write of a synth run: its loudness measured while the parts are spoken, equal to reading them
back; its 16-bit samples converted as libsndfile converts them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxmill.synth.output import LevelSoFar, _pcm16_in_place, measure, write_parts


def _speech(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    n = int(seconds * sr)
    envelope = np.abs(np.sin(np.arange(n) / (0.3 * sr)))  # syllable-like bursts and gaps
    return (rng.standard_normal(n) * 0.2 * envelope).astype(np.float32)


def test_the_level_measured_while_speaking_is_the_level_read_back(tmp_path: Path) -> None:
    sr, gap = 22050, 1.5
    rng = np.random.default_rng(7)
    parts = [_speech(rng, s, sr) for s in (3.0, 0.7, 5.2, 2.0)]
    paths = []
    for c, samples in enumerate(parts):
        paths.append(tmp_path / f"{c}.wav")
        sf.write(paths[-1], samples, sr, subtype="FLOAT")
    so_far = LevelSoFar(sr, gap)
    for c, samples in enumerate(parts):
        if c == 2:  # an earlier run's part, read from its file
            so_far.add_file(c, paths[c])
            continue
        so_far.start(c)
        cuts = np.sort(rng.integers(0, samples.size, 40))  # pieces of any length, as they come
        for piece in np.split(samples, cuts):
            so_far.add(piece)
    read_back = measure([(p, gap if c < 3 else 0.0) for c, p in enumerate(paths)], sr)
    assert so_far.of([0, 1, 2, 3]) == read_back  # the same values, not merely close
    assert np.isfinite(read_back[0])
    # Fed a chapter the output does not have (it failed), or in another order: no figure, so it is measured.
    assert so_far.of([0, 2, 3]) is None and so_far.of([1, 0, 2, 3]) is None


def test_16_bit_samples_are_the_ones_libsndfile_writes() -> None:
    rng = np.random.default_rng(3)
    steps = rng.integers(-33000, 33000, 100_000)
    samples = np.concatenate([
        ((steps + rng.uniform(-0.01, 0.01, steps.size)) / 32768).astype(np.float32),  # next to a step
        (rng.standard_normal(200_000) * 0.3).astype(np.float32),
        (np.arange(-70_000, 70_000) / 131072).astype(np.float32),  # exactly halfway between steps
        np.array([1.0, -1.0, 1.5, -1.5, 0.0, -0.0, 1e-30, 1e10, -1e10, np.inf, -np.inf], np.float32),
    ])  # fmt: skip
    gain = np.float32(0.7)
    buffer = io.BytesIO()
    sf.write(buffer, samples * gain, 22050, subtype="PCM_16", format="WAV")
    buffer.seek(0)
    assert np.array_equal(_pcm16_in_place(samples, gain), sf.read(buffer, dtype="int16")[0])


@pytest.mark.parametrize("suffix", [".wav", ".aiff", ".flac"])
def test_the_output_holds_what_libsndfile_would_write(tmp_path: Path, suffix: str) -> None:
    # WAV and AIFF through the numpy conversion, FLAC through libsndfile's own (it rounds differently).
    rng = np.random.default_rng(11)
    samples = _speech(rng, 4.0, 22050)
    part = tmp_path / "part.wav"
    sf.write(part, samples, 22050, subtype="FLOAT")
    write_parts([(part, 0.5), (part, 0.0)], tmp_path / f"out{suffix}", 22050, -3.7)
    gain = np.float32(10 ** (-3.7 / 20))
    pause = np.zeros(round(0.5 * 22050), np.float32)
    expected = tmp_path / f"expected{suffix}"
    sf.write(expected, np.concatenate([samples * gain, pause, samples * gain]), 22050, subtype="PCM_16")
    assert np.array_equal(sf.read(tmp_path / f"out{suffix}", dtype="int16")[0], sf.read(expected, dtype="int16")[0])
