from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxmill.audio import Audio, load, probe, save
from voxmill.errors import AudioDecodeError, AudioEncodeError

LOSSLESS = ["wav", "flac"]
LOSSY = ["ogg", "mp3", "m4a", "opus"]


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(a.shape[0], b.shape[0])
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@pytest.mark.parametrize("suffix", LOSSLESS)
def test_lossless_round_trip_keeps_samples(tmp_path: Path, speech: Audio, suffix: str) -> None:
    path = save(tmp_path / f"clip.{suffix}", speech)
    back = load(path)
    assert back.sample_rate == speech.sample_rate
    assert back.frames == speech.frames
    # PCM_16 quantisation is the only loss.
    assert np.max(np.abs(back.samples - speech.samples)) < 1e-4
    assert back.source is not None and back.source.format == suffix.upper()


@pytest.mark.parametrize("suffix", LOSSY)
def test_lossy_round_trip_keeps_duration_and_sound(tmp_path: Path, speech: Audio, suffix: str) -> None:
    path = save(tmp_path / f"clip.{suffix}", speech)
    back = load(path, sr=speech.sample_rate)
    assert back.sample_rate == speech.sample_rate
    # Encoders add priming/padding samples; a few tens of ms at most.
    assert abs(back.duration - speech.duration) < 0.1
    rms_in = np.sqrt(np.mean(speech.samples**2))
    rms_out = np.sqrt(np.mean(back.samples**2))
    assert rms_out == pytest.approx(rms_in, rel=0.1)


def test_flac_decodes_as_libsndfile_does_at_any_depth(tmp_path: Path, speech: Audio) -> None:
    # FLAC goes through dr_flac (faster); samples and header facts must match libsndfile's exactly.
    stereo = np.stack([speech.samples, -0.5 * speech.samples], axis=1)
    for subtype in ("PCM_16", "PCM_24"):
        path = tmp_path / f"clip{subtype}.flac"
        sf.write(path, stereo, speech.sample_rate, subtype=subtype)
        back = load(path, mono=False)
        expected, _ = sf.read(path, dtype="float32")
        np.testing.assert_array_equal(back.samples, expected)
        assert back.source is not None
        assert (back.source.format, back.source.codec, back.source.channels) == ("FLAC", subtype, 2)
        assert back.source.frames == speech.frames


def test_pyav_format_is_decoded_by_pyav(tmp_path: Path, speech: Audio) -> None:
    path = save(tmp_path / "clip.m4a", speech)
    info = probe(path)
    assert (info.format, info.codec) == ("MP4", "AAC")
    back = load(path)
    # AAC delays the signal by its priming samples; line the two up before comparing shapes.
    lag = int(np.argmax(np.correlate(back.samples[:4096], speech.samples[:2048], mode="valid")))
    assert _correlation(back.samples[lag:], speech.samples) > 0.95


def test_load_resamples_mono_and_reads_a_part(tmp_path: Path, speech: Audio) -> None:
    stereo = np.stack([speech.samples, speech.samples * 0.5], axis=1)
    path = save(tmp_path / "stereo.wav", Audio(stereo, speech.sample_rate), subtype="FLOAT")
    both = load(path, mono=False)
    assert both.samples.shape == (speech.frames, 2)
    mono = load(path)
    assert mono.samples.ndim == 1
    np.testing.assert_allclose(mono.samples, speech.samples * 0.75, atol=1e-6)
    part = load(path, sr=16000, offset=1.0, duration=2.0)
    assert part.sample_rate == 16000
    assert part.frames == 32000


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path, speech: Audio) -> None:
    target = tmp_path / "out" / "clip.flac"
    save(target, speech)
    save(target, speech)  # replacing an existing file goes through the same temp + rename
    assert sorted(p.name for p in target.parent.iterdir()) == ["clip.flac"]


def test_failed_save_leaves_nothing_behind(tmp_path: Path, speech: Audio) -> None:
    bad = Audio(np.full(1000, np.nan, np.float32), 16000)
    with pytest.raises(AudioEncodeError, match="NaN"):
        save(tmp_path / "bad.wav", bad)
    with pytest.raises(AudioEncodeError, match="unknown output format"):
        save(tmp_path / "clip.xyz", speech)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_survives_a_failed_overwrite(tmp_path: Path, speech: Audio) -> None:
    target = save(tmp_path / "clip.wav", speech)
    before = target.read_bytes()
    with pytest.raises(AudioEncodeError):
        save(target, Audio(np.zeros(0, np.float32), speech.sample_rate))
    assert target.read_bytes() == before


# ---- damaged input: every kind is one AudioDecodeError naming the file -------------------------


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _damaged(kind: str, tmp_path: Path, speech: Audio) -> Path:
    if kind == "empty":
        path = tmp_path / "empty.wav"
        path.touch()
        return path
    if kind.startswith("truncated-"):
        return _truncate(save(tmp_path / f"cut.{kind.split('-')[1]}", speech))
    if kind == "header-only":
        path = save(tmp_path / "header.wav", speech)
        path.write_bytes(path.read_bytes()[:30])
        return path
    if kind == "garbage":
        path = tmp_path / "garbage.wav"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 8000, dtype=np.uint8).tobytes())
        return path
    if kind == "garbage-mp3":
        path = tmp_path / "garbage.mp3"
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 8000, dtype=np.uint8).tobytes())
        return path
    if kind == "text":
        path = tmp_path / "notes.flac"
        path.write_text("this is a transcript, not audio\n" * 40)
        return path
    if kind in ("nan", "inf"):
        data = speech.samples.copy()
        data[1000] = np.nan if kind == "nan" else np.inf
        path = tmp_path / f"{kind}.wav"
        sf.write(path, data, speech.sample_rate, subtype="FLOAT")
        return path
    if kind == "missing":
        return tmp_path / "missing.wav"
    if kind == "directory":
        path = tmp_path / "folder.wav"
        path.mkdir()
        return path
    raise ValueError(kind)


DAMAGED = [
    ("empty", "empty"),
    ("truncated-wav", "truncated"),
    ("truncated-flac", "truncated"),
    ("truncated-mp3", "truncated"),
    ("truncated-ogg", "truncated"),
    ("truncated-m4a", ""),
    ("header-only", ""),
    ("garbage", ""),
    ("garbage-mp3", ""),
    ("text", "text"),
    ("nan", "non-finite"),
    ("inf", "non-finite"),
    ("missing", "not found"),
    ("directory", "directory"),
]


@pytest.mark.parametrize(("kind", "reason"), DAMAGED, ids=[k for k, _ in DAMAGED])
def test_damaged_file_gives_one_line_decode_error(tmp_path: Path, speech: Audio, kind: str, reason: str) -> None:
    path = _damaged(kind, tmp_path, speech)
    with pytest.raises(AudioDecodeError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert reason in caught.value.reason
    assert caught.value.path == str(path)


def test_damaged_mp3_decodes_without_decoder_chatter(tmp_path: Path, speech: Audio) -> None:
    import subprocess
    import sys

    good = save(tmp_path / "good.mp3", speech)
    data = bytearray(good.read_bytes())
    rng = np.random.default_rng(1)
    for at in rng.integers(2000, len(data) - 16, 30):
        data[at : at + 8] = bytes(8)  # zeroed frame headers: libmpg123 resyncs, and used to say so on fd 2
    damaged = tmp_path / "damaged.mp3"
    damaged.write_bytes(bytes(data))
    (tmp_path / "zeros.mp3").write_bytes(bytes(5000))
    zeros = tmp_path / "zeros.mp3"
    args = [sys.executable, "-m", "voxmill", "info", "--no-vad", str(damaged), str(zeros)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "damaged.mp3" in done.stdout
    assert done.stderr.strip().splitlines() == [f"{zeros}: not a recognised audio format or corrupt data"]


@pytest.mark.parametrize("rate", [1, 8, 3999, 768001, 2147483647])
def test_rates_voxmill_cannot_handle_are_refused_by_every_reader(tmp_path: Path, rate: int) -> None:
    from voxmill.audio import blocks

    path = tmp_path / f"r{rate}.wav"
    sf.write(path, np.zeros(64, np.float32), rate, subtype="PCM_16")
    for read in (probe, load, lambda p: list(blocks(p))):
        with pytest.raises(AudioDecodeError, match=f"sample rate {rate} Hz"):
            read(path)
    with pytest.raises(AudioEncodeError, match="sample rate"):
        save(tmp_path / "out.wav", Audio(np.zeros(64, np.float32), rate))
