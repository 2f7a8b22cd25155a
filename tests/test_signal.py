"""Resampling, loudness, analysis and VAD on real speech and exact test signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import sine
from voxmill.audio import Audio, analyze, integrated_lufs, normalize, resample, speech_ratio, speech_segments


def _peak_frequency(samples: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.shape[0])))
    return float(np.argmax(spectrum) * sr / samples.shape[0])


@pytest.mark.parametrize(("sr_in", "sr_out"), [(44100, 16000), (16000, 48000), (22050, 24000)])
def test_resample_keeps_frequency_and_energy(sr_in: int, sr_out: int) -> None:
    tone = sine(440.0, sr_in, 2.0)
    out = resample(tone, sr_in, sr_out)
    assert out.shape[0] == pytest.approx(2.0 * sr_out, abs=2)
    assert _peak_frequency(out, sr_out) == pytest.approx(440.0, abs=1.0)
    # Ignore the filter's edges, then the RMS of a 0.5-amplitude sine is 0.5/sqrt(2).
    body = out[sr_out // 10 : -sr_out // 10]
    assert np.sqrt(np.mean(body**2)) == pytest.approx(0.5 / math.sqrt(2), rel=0.01)


def test_resample_multichannel_and_identity() -> None:
    stereo = np.stack([sine(300, 16000, 1.0), sine(600, 16000, 1.0)], axis=1)
    out = resample(stereo, 16000, 8000)
    assert out.shape == (8000, 2)
    assert _peak_frequency(out[:, 1], 8000) == pytest.approx(600, abs=2)
    same = resample(stereo, 16000, 16000)
    assert same is stereo or np.array_equal(same, stereo)


@pytest.mark.parametrize("target", [-23.0, -30.0, -21.0])
def test_normalize_reaches_target_within_half_lu(speech: Audio, target: float) -> None:
    result = normalize(speech.samples, speech.sample_rate, target_lufs=target, peak_ceiling_db=0.0)
    assert not result.peak_limited
    assert integrated_lufs(result.samples, speech.sample_rate) == pytest.approx(target, abs=0.5)


def test_normalize_respects_peak_ceiling(speech: Audio) -> None:
    result = normalize(speech.samples, speech.sample_rate, target_lufs=-5.0, peak_ceiling_db=-1.0)
    assert result.peak_limited
    assert 20 * np.log10(np.max(np.abs(result.samples))) <= -1.0 + 1e-3


@pytest.mark.parametrize("sr", [48000, 22050, 16000])
def test_loudness_matches_bs1770_reference_tone(sr: int) -> None:
    # BS.1770-4: a full-scale 997 Hz sine reads -3.01 LUFS on one channel, 0.0 LUFS on two.
    tone = (np.sin(2 * np.pi * 997 * np.arange(3 * sr) / sr)).astype(np.float32)
    assert integrated_lufs(tone, sr) == pytest.approx(-3.01, abs=0.05)
    assert integrated_lufs(np.stack([tone, tone], axis=1), sr) == pytest.approx(0.0, abs=0.05)


def test_silence_has_no_loudness_and_is_left_alone() -> None:
    silence = np.zeros(16000, np.float32)
    assert integrated_lufs(silence, 16000) == -math.inf
    result = normalize(silence, 16000)
    assert result.gain_db == 0.0 and not np.any(result.samples)


def test_analysis_measures_padding_clipping_and_noise(speech: Audio) -> None:
    sr = speech.sample_rate
    padded = np.concatenate([np.zeros(sr // 2, np.float32), speech.samples, np.zeros(sr, np.float32)])
    stats = analyze(padded, sr)
    assert stats.duration == pytest.approx(padded.shape[0] / sr)
    assert stats.peak_dbfs == pytest.approx(-6.0, abs=0.1)
    assert 0.5 <= stats.leading_silence < 0.65  # the voice adds its own quiet onset
    assert stats.trailing_silence == pytest.approx(1.0, abs=0.25)  # the voice's own tail is quiet too
    assert stats.clipping_ratio == 0.0
    assert 0.05 < stats.silence_ratio < 0.6
    exact_rms = np.sqrt(np.mean(padded.astype(np.float64) ** 2))
    assert stats.rms_dbfs == pytest.approx(20 * np.log10(exact_rms), abs=1e-3)

    clipped = np.clip(speech.samples * 8, -1.0, 1.0)
    assert analyze(clipped, sr).clipping_ratio > 0.01

    noise = np.random.default_rng(0).normal(0, 0.05, speech.frames).astype(np.float32)
    assert analyze(speech.samples + noise, sr).snr_db < stats.snr_db - 20

    with_nan = speech.samples.copy()
    with_nan[[10, 20]] = np.nan
    assert analyze(with_nan, sr).non_finite == 2


def test_vad_finds_speech_in_speech(speech: Audio) -> None:
    segments = speech_segments(speech.samples, speech.sample_rate)
    assert segments
    assert all(0 <= s.start < s.end <= speech.frames for s in segments)
    assert speech_ratio(speech.samples, speech.sample_rate) > 0.6


def test_vad_positions_are_in_the_callers_rate(speech: Audio) -> None:
    at_native = speech_segments(speech.samples, speech.sample_rate)
    doubled = speech_segments(resample(speech.samples, speech.sample_rate, 44100), 44100)
    assert len(doubled) == len(at_native)
    for a, b in zip(at_native, doubled, strict=True):
        assert a.seconds(speech.sample_rate)[0] == pytest.approx(b.seconds(44100)[0], abs=0.05)


def test_vad_finds_nothing_in_silence_or_white_noise() -> None:
    sr = 16000
    assert speech_segments(np.zeros(sr * 3, np.float32), sr) == []
    noise = np.random.default_rng(0).normal(0, 0.1, sr * 3).astype(np.float32)
    assert speech_ratio(noise, sr) < 0.05


def _limit(samples: np.ndarray, sr: int, sizes: list[int], ceiling_db: float = -1.0) -> np.ndarray:
    from voxmill.audio.limiter import PeakLimiter

    limiter = PeakLimiter(sr, ceiling_db)
    parts, at, turn = [], 0, 0
    while at < samples.shape[0]:
        size = sizes[turn % len(sizes)]
        parts += limiter.push(samples[at : at + size])
        at, turn = at + size, turn + 1
    return np.concatenate(parts + limiter.flush())


def test_limiter_holds_the_ceiling_leaves_the_rest_and_streams_seamlessly(speech: Audio) -> None:
    sr = speech.sample_rate
    hot = speech.samples * np.float32(2.5)  # real speech 2 dB past full scale at its peaks
    ceiling = 10 ** (-1 / 20)
    whole = _limit(hot, sr, [hot.shape[0]])
    assert whole.shape == hot.shape and np.abs(whole).max() <= ceiling + 1e-6
    # Block sizes do not matter (a stream of any cut gives the same samples).
    np.testing.assert_array_equal(whole, _limit(hot, sr, [7, 4096, 333, 22050]))
    # Far from the peaks (over 50 ms away) the audio is untouched; loudness moves well under 1 LU.
    near = np.convolve(np.abs(hot) > ceiling, np.ones(int(0.1 * sr)), mode="same") > 0
    np.testing.assert_array_equal(whole[~near], hot[~near])
    assert abs(integrated_lufs(whole, sr) - integrated_lufs(hot, sr)) < 1.0
    # Audio under the ceiling passes bit for bit; channels share one gain (the balance stays).
    np.testing.assert_array_equal(_limit(speech.samples, sr, [5000]), speech.samples)
    stereo = np.stack([hot, 0.5 * hot], axis=1)
    both = _limit(stereo, sr, [10000])
    np.testing.assert_allclose(both[:, 0], whole, atol=1e-6)
    np.testing.assert_allclose(both[:, 1], 0.5 * whole, atol=1e-6)


def test_streamed_vad_matches_the_whole_clip(speech: Audio) -> None:
    from voxmill.audio.vad import SpeechTracker

    tracker = SpeechTracker(speech.sample_rate)
    for at in range(0, speech.frames, 30000):
        tracker.add(speech.samples[at : at + 30000])
    streamed = tracker.segments()
    whole = speech_segments(speech.samples, speech.sample_rate)
    assert len(streamed) == len(whole) >= 2
    window = 512 * speech.sample_rate // 16000
    for a, b in zip(streamed, whole, strict=True):
        assert abs(a.start - b.start) <= window and abs(a.end - b.end) <= window


def test_multichannel_chunks_cut_like_their_mix(speech: Audio) -> None:
    from voxmill.audio import Block
    from voxmill.audio.slicing import SliceOptions, slice_blocks

    opts = SliceOptions(max_seconds=4, min_seconds=1, search_seconds=1)
    x = speech.samples
    stereo = np.stack([x, 0.5 * x], axis=1)
    blocks = [Block(i, i * 50000, stereo[i * 50000 : (i + 1) * 50000], speech.sample_rate) for i in range(6)]
    mono = [Block(b.index, b.start, b.samples.mean(axis=1), b.sample_rate) for b in blocks]
    two, one = list(slice_blocks(blocks, opts)), list(slice_blocks(mono, opts))
    assert [(c.start, c.end, c.forced_end) for c in two] == [(c.start, c.end, c.forced_end) for c in one]
    assert all(c.samples.shape[1] == 2 for c in two) and two[-1].end == x.shape[0]


def test_limiter_survives_absurd_plugin_samples() -> None:
    # A plug-in processor may return 1e30: the gain underflows to 0, and the report must not fail on log10(0).
    import numpy as np

    from voxmill.audio.limiter import PeakLimiter

    limiter = PeakLimiter(22050, ceiling_db=-1.0)
    block = np.full(22050, 1e30, dtype=np.float32)
    out = np.concatenate([*limiter.push(block), *limiter.flush()])
    assert out.shape == (22050,) and np.isfinite(out).all() and np.abs(out).max() <= 10 ** (-1 / 20) + 1e-6
    assert np.isfinite(limiter.max_reduction_db) and limiter.max_reduction_db > 100
