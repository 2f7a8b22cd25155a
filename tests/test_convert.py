"""voxmill convert on real synthesized recordings: order, length, silence, crashes, formats, joins."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from make_demo_recording import write_recording

import convert_processors as procs
from voxmill.audio import Audio, load
from voxmill.audio.slicing import SliceOptions, slice_blocks
from voxmill.convert import ConvertOptions, VoiceChanger, convert_file
from voxmill.convert.processors.gender import ChangeGender
from voxmill.convert.processors.pitch import PitchShift
from voxmill.engine import RunOptions
from voxmill.errors import ConfigError

# Short chunks so a one-minute recording has many joins, some forced inside speech (its run-on stretch).
SHORT_CHUNKS = SliceOptions(max_seconds=8.0, min_seconds=2.0, search_seconds=1.0)


def fast(workers: int | str = "auto", backend: str = "auto", **options: object) -> ConvertOptions:
    """Short chunks, no progress bar, on ``workers`` of ``backend``."""
    run = RunOptions(workers=workers, backend=backend, progress=False)
    return ConvertOptions(slicing=SHORT_CHUNKS, run=run, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def recording(speech_cache: Path) -> Path:
    """One minute of speech with pauses and a 42-s stretch without any, 22050 Hz FLAC."""
    path = speech_cache / "recording-1min.flac"
    if not path.exists():
        write_recording(path, 1.0)
    return path


def voxmill(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}  # for module:Class test processors
    return subprocess.run(
        [sys.executable, "-m", "voxmill", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_chunks_tile_the_file_and_some_cuts_are_forced(recording: Path) -> None:
    from voxmill.audio import blocks

    chunks = list(slice_blocks(blocks(recording), SliceOptions(max_seconds=8, min_seconds=2, search_seconds=1)))
    assert chunks[0].start == 0 and chunks[-1].end == load(recording).frames
    assert all(a.end == b.start for a, b in itertools.pairwise(chunks))
    assert any(c.forced_end for c in chunks) and any(not c.forced_end for c in chunks[:-1])
    assert max(c.seconds for c in chunks) <= 8.0 + 1e-9
    with pytest.raises(ConfigError, match="minimum silence"):
        list(slice_blocks(blocks(recording), SliceOptions(min_silence_ms=1, hop_ms=10)))


def test_order_is_kept_and_silent_chunks_skip_the_processor(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "tagged.wav"
    result = convert_file(recording, out, procs.TagChunks(), fast(2, "process"))
    y, _ = sf.read(out, dtype="float32")
    assert result.silent_chunks >= 1
    joins = [0, *result.joins, y.shape[0]]
    tags = []
    for a, b in itertools.pairwise(joins):
        middle = y[(a + b) // 2]
        tags.append(round(float(middle) / procs.TAG_STEP))
    processed = [t for t in tags if t > 0]
    assert processed == sorted(processed) and len(set(processed)) == len(processed)
    assert len(processed) == result.chunks - result.silent_chunks  # silent chunks kept their (near-zero) audio
    assert 0 in tags


@pytest.mark.parametrize("rate", [None, 16000])
def test_output_as_long_as_input_at_any_rate_and_mp3_in_and_out(
    recording: Path, tmp_path: Path, rate: int | None
) -> None:
    source = tmp_path / "in.mp3"
    sf.write(source, load(recording).samples, 22050)
    out = tmp_path / "out.mp3"
    convert_file(source, out, ChangeGender(formant=1.15), fast(2, sample_rate=rate))
    back = load(out)
    expected = load(source).frames * (rate or 22050) / 22050
    # mp3 adds encoder padding on both trips; wav is exact (tested below).
    assert abs(back.frames - expected) <= 2 * 1152 * (rate or 22050) / 22050 + 1
    wav = tmp_path / "out.wav"
    result = convert_file(recording, wav, ChangeGender(), fast(2, sample_rate=rate))
    assert abs(load(wav).frames - load(recording).frames * result.sample_rate / 22050) <= 1


def test_no_parallel_gives_the_same_audio(recording: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "parallel.wav", tmp_path / "serial.wav"
    # loudness is deterministic (Praat's Change gender is not: its output varies run to run).
    convert_file(recording, a, "loudness", fast(2, "process"))
    convert_file(recording, b, "loudness", fast(backend="serial"))
    np.testing.assert_array_equal(sf.read(a)[0], sf.read(b)[0])


def test_no_clicks_at_joins_with_pitch(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "pitch.wav"
    result = convert_file(recording, out, PitchShift(semitones=4), fast(2))
    y, _ = sf.read(out, dtype="float32")
    jumps = np.abs(np.diff(y))
    at_joins = np.array([jumps[j - 1] for j in result.joins])
    inside = np.delete(jumps, [j - 1 for j in result.joins])
    assert result.plan is not None and result.plan.backend == "thread"  # pyworld frees the GIL
    assert len(result.joins) >= 6 and at_joins.max() <= inside.max()


def test_sigkilled_worker_still_gives_a_complete_file(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "survived.wav"
    processor = procs.KillOnce(marker=str(tmp_path / "killed"), index=2)
    result = convert_file(recording, out, processor, fast(2, "process"))
    assert (tmp_path / "killed").exists()  # the worker did die
    assert result.kept_original == []  # its chunk was retried on a fresh worker
    # Pass-through audio back, except inside the 10-ms equal-power fades at forced cuts.
    y, x = load(out).samples, load(recording).samples
    keep = np.ones(x.shape[0], dtype=bool)
    for join in result.joins:
        keep[join - 120 : join + 120] = False
    assert y.shape == x.shape
    np.testing.assert_allclose(y[keep], x[keep], atol=1e-4)


def test_failed_chunk_keeps_original_audio_or_fails_with_strict(recording: Path, tmp_path: Path) -> None:
    out = tmp_path / "kept.wav"
    target = "convert_processors:FailAt"
    args = ["convert", str(recording), str(out), "-p", target, "--set", "index=0", "--chunk-seconds", "8"]
    done = voxmill(*args)
    assert done.returncode == 0 and "chunk 0" in done.stderr and "kept its original audio" in done.stderr
    y, x = load(out).samples, load(recording).samples
    assert y.shape == x.shape and np.isclose(y, x, atol=1e-4).mean() < 0.5  # the other chunks were halved
    strict = voxmill(*args[:2], str(tmp_path / "strict.wav"), *args[3:], "--strict")
    assert strict.returncode == 1 and "failed twice" in strict.stderr and "Traceback" not in strict.stderr
    assert not (tmp_path / "strict.wav").exists()


def test_unreadable_input_and_bad_options_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\x00" * 5000)
    done = voxmill("convert", str(bad), str(tmp_path / "out.wav"), "-p", "pitch")
    # libmpg123 prints its own "Note:" lines straight to stderr; voxmill's is the one error line.
    ours = [line for line in done.stderr.splitlines() if line.startswith("voxmill:")]
    assert done.returncode == 2 and len(ours) == 1 and str(bad) in ours[0]
    assert voxmill("convert", str(bad), str(tmp_path / "o.wav"), "-p", "nope").returncode == 2
    assert voxmill("convert", str(bad), str(tmp_path / "o.wav"), "-p", "pitch", "--semitones", "99").returncode == 2


def test_voice_changer_api_and_folder_output(recording: Path, tmp_path: Path) -> None:
    changer = VoiceChanger(enable_parallel=True, chunk_duration_minutes=0.2, max_workers=2)
    result = changer.process_file(recording, tmp_path / "changed.flac", method="gender", formant=1.2)
    assert result.output.exists() and result.chunks >= 4
    changer.cleanup()
    second = tmp_path / "second.flac"
    second.write_bytes(recording.read_bytes())
    done = voxmill("convert", str(recording), str(second), str(tmp_path / "folder"), "-p", "loudness")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == sorted([recording.name, second.name])


@pytest.mark.slow
def test_revoice_respeaks_with_piper_in_the_same_time(recording: Path, tmp_path: Path) -> None:
    from voxmill.audio import speech_segments

    out = tmp_path / "revoiced.wav"
    source = tmp_path / "short.wav"
    sf.write(source, load(recording, duration=12.0).samples, 22050)
    result = convert_file(source, out, "revoice", fast(1))
    back = load(out)
    assert back.frames == load(source).frames and result.kept_original == []
    assert sum(s.end - s.start for s in speech_segments(back.samples, back.sample_rate)) > 3 * 22050


def _hot(speech_cache: Path) -> tuple[np.ndarray, int]:
    """~13 s of real speech peaking at -0.3 dBFS: WORLD +4 semitones pushes it past full scale."""
    from make_demo_audio import SENTENCES, synthesize_speech

    path = speech_cache / "hot-speech.wav"
    if not path.exists():
        x, sr = synthesize_speech(" ".join(SENTENCES))
        sf.write(path, x / np.abs(x).max() * 10 ** (-0.3 / 20), sr, subtype="FLOAT")
    x, sr = sf.read(path, dtype="float32")
    return x, sr


def test_pitch_overshoot_is_limited_never_clipped_and_loudness_kept(speech_cache: Path, tmp_path: Path) -> None:
    from voxmill.audio import integrated_lufs

    x, sr = _hot(speech_cache)
    x = x[5 * sr : 10 * sr]  # five seconds that peak at -0.3 dBFS and overshoot by +4
    source = tmp_path / "hot.wav"
    sf.write(source, x, sr, subtype="PCM_16")
    limited, raw = tmp_path / "limited.wav", tmp_path / "raw.wav"
    run = RunOptions(workers=2, progress=False)
    result = convert_file(source, limited, PitchShift(semitones=4), ConvertOptions(run=run))
    convert_file(source, raw, PitchShift(semitones=4), ConvertOptions(run=run, peak_ceiling_db=None))
    y, r = sf.read(limited, dtype="float32")[0], sf.read(raw, dtype="float32")[0]
    assert np.count_nonzero(np.abs(r) >= 0.999) > 0  # the processor does overshoot (clipped without the limiter)
    assert np.count_nonzero(np.abs(y) >= 0.999) == 0 and np.abs(y).max() <= 10 ** (-1 / 20) + 1e-4
    assert result.limited_frames > 0 and result.peak_reduction_db > 0
    assert abs(integrated_lufs(y, sr) - integrated_lufs(r, sr)) < 1.0
    assert y.shape == r.shape == x.shape


def test_channels_are_kept_or_the_mixdown_is_said(speech: Audio, tmp_path: Path) -> None:
    x = speech.samples
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([x, 0.5 * np.roll(x, 300)], axis=1), speech.sample_rate, subtype="PCM_16")
    eight = tmp_path / "eight.flac"
    sf.write(eight, np.stack([x * (0.2 + 0.1 * i) for i in range(8)], axis=1), speech.sample_rate)
    # Per channel (Praat's PSOLA): each channel its own, the quieter one stays quieter.
    result = convert_file(stereo, tmp_path / "gender.wav", ChangeGender(formant=1.15), fast())
    y, _ = sf.read(tmp_path / "gender.wav", dtype="float32")
    assert y.shape == (x.shape[0], 2) and result.channels == 2 and not result.mixed_to_mono
    assert 0.3 < np.abs(y[:, 1]).max() / np.abs(y[:, 0]).max() < 0.7
    # One gain for all channels (loudness), through the CLI: 8 channels in, 8 out, balance kept.
    done = voxmill("convert", str(eight), str(tmp_path / "eight-out.flac"), "-p", "loudness")
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    z, _ = sf.read(tmp_path / "eight-out.flac", dtype="float32")
    assert z.shape == (x.shape[0], 8)
    np.testing.assert_allclose(np.abs(z).max(axis=0) / np.abs(z).max(), [(0.2 + 0.1 * i) / 0.9 for i in range(8)],
                               atol=0.02)  # fmt: skip
    # mp3 holds 2 channels: refused up front, not silently mixed.
    done = voxmill("convert", str(eight), str(tmp_path / "eight.mp3"), "-p", "loudness")
    assert done.returncode == 2 and "8" in done.stderr and not (tmp_path / "eight.mp3").exists()
    # A processor that can only make one channel: mono out, and the user is told.
    done = voxmill("convert", str(stereo), str(tmp_path / "mono.wav"), "-p", "convert_processors:MonoOnly")
    assert done.returncode == 0 and "mixed to mono" in done.stderr, done.stderr
    assert sf.info(tmp_path / "mono.wav").channels == 1
