"""engine.filters: the clip filters prepare and segment share, on real speech from the bundled voice."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from voxmill.audio import Audio
from voxmill.engine import ClipFilters, Drop, DropCode
from voxmill.errors import ConfigError
from voxmill.prepare import ClipOptions, PrepareOptions, parse_source, run
from voxmill.prepare.steps import DropCode as PrepareDropCode

TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


@pytest.fixture(scope="module")
def sentence(synth: Callable[[str], Audio]) -> Audio:
    return synth(TEXT)


def _dropped(check: Callable[[], None]) -> Drop:
    with pytest.raises(Drop) as info:
        check()
    return info.value


def test_every_filter_is_off_or_wide_by_default(sentence: Audio) -> None:
    filters = ClipFilters()
    filters.check_level(sentence.samples)
    filters.check_clip(sentence.samples, sentence.sample_rate, TEXT)
    filters.check_clip(sentence.samples, sentence.sample_rate, "x" * 10_000)  # no rate limit unless asked
    assert (filters.min_snr_db, filters.min_chars_per_second, filters.max_chars_per_second) == (None, None, None)
    assert DropCode is PrepareDropCode  # prepare's old import still works


def test_level_drops_clipping_and_silence(sentence: Audio) -> None:
    loud = np.clip(sentence.samples * 20, -1.0, 1.0)
    drop = _dropped(lambda: ClipFilters().check_level(loud))
    assert drop.code is DropCode.CLIPPING and "% of samples at full scale" in drop.reason
    ClipFilters(max_clipping=1.0).check_level(loud)
    drop = _dropped(lambda: ClipFilters().check_level(sentence.samples * 1e-4))
    assert drop.code is DropCode.SILENT and "-60 dBFS" in drop.reason


def test_piper_floor_and_duration_bounds(sentence: Audio) -> None:
    sr = sentence.sample_rate
    seconds = sentence.duration
    short = sentence.samples[: int(0.2 * sr)]
    drop = _dropped(lambda: ClipFilters().check_clip(short, sr, TEXT))
    assert drop.code is DropCode.TOO_SHORT_FOR_PIPER and "0.20s < 0.37s" in drop.reason
    ClipFilters(for_piper=False).check_clip(short, sr, TEXT)
    drop = _dropped(lambda: ClipFilters(min_duration=seconds + 1).check_clip(sentence.samples, sr, TEXT))
    assert drop.code is DropCode.TOO_SHORT and f"{seconds:.2f}s <" in drop.reason
    drop = _dropped(lambda: ClipFilters(max_duration=1.0).check_clip(sentence.samples, sr, TEXT))
    assert drop.code is DropCode.TOO_LONG and f"{seconds:.2f}s > 1s" in drop.reason


def test_low_snr_drops_noisy_speech_only(sentence: Audio) -> None:
    sr = sentence.sample_rate
    noise = np.random.default_rng(0).normal(0, 0.05, sentence.samples.shape[0]).astype(np.float32)
    filters = ClipFilters(min_snr_db=20)
    filters.check_clip(sentence.samples, sr, TEXT)
    drop = _dropped(lambda: filters.check_clip(sentence.samples + noise, sr, TEXT))
    assert drop.code is DropCode.LOW_SNR and "dB < 20 dB" in drop.reason


def test_speaking_rate_bounds(sentence: Audio) -> None:
    sr = sentence.sample_rate
    rate = len(TEXT) / sentence.duration
    assert 8 < rate < 25  # real speech: about 15 characters per second
    ClipFilters(min_chars_per_second=rate / 2, max_chars_per_second=rate * 2).check_clip(sentence.samples, sr, TEXT)
    drop = _dropped(lambda: ClipFilters(max_chars_per_second=rate / 2).check_clip(sentence.samples, sr, TEXT))
    assert drop.code is DropCode.TOO_FAST and f"{rate:.1f} characters/s" in drop.reason
    drop = _dropped(lambda: ClipFilters(min_chars_per_second=rate * 2).check_clip(sentence.samples, sr, TEXT))
    assert drop.code is DropCode.TOO_SLOW
    # A drop crosses process boundaries with its code (the engine pickles it back from a worker).
    again = pickle.loads(pickle.dumps(drop))
    assert again.code is DropCode.TOO_SLOW and again.reason == drop.reason


@pytest.mark.parametrize(
    ("filters", "flag"),
    [
        (ClipFilters(min_snr_db=float("nan")), "--min-snr"),
        (ClipFilters(min_chars_per_second=-1), "--min-speaking-rate"),
        (ClipFilters(max_chars_per_second=0), "--max-speaking-rate"),
        (ClipFilters(min_chars_per_second=20, max_chars_per_second=10), "--max-speaking-rate 10"),
        (ClipFilters(min_duration=5, max_duration=2), "--max-duration 2"),
        (ClipFilters(max_clipping=2), "--max-clipping"),
    ],
)
def test_validate_names_the_flag(filters: ClipFilters, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        filters.validate()


def test_validate_takes_the_callers_duration_flags() -> None:
    with pytest.raises(ConfigError, match="--max-seconds 1: must be above 0 and at least --min-seconds"):
        ClipFilters(min_duration=2, max_duration=1).validate("--min-seconds", "--max-seconds")


def test_prepare_reports_the_new_codes(tmp_path: Path, corpus: Path) -> None:
    clip = ClipOptions(trim=False, max_chars_per_second=1.0)
    result = run(PrepareOptions([parse_source(str(corpus))], tmp_path / "out", clip=clip))
    assert result.counts == {"dropped": 12}
    assert [(g.code, g.count) for g in result.stats.reasons] == [("speaking too fast", 12)]
    entry = json.loads((tmp_path / "out" / "report.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert entry["code"] == "speaking too fast" and "characters/s > 1" in entry["reason"]
    with pytest.raises(ConfigError, match="--min-snr"):
        PrepareOptions([], tmp_path / "x", clip=ClipOptions(min_snr_db=500)).validate()
