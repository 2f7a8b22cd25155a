"""blocks(): long files in bounded memory, seamless joins."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxmill.audio import Audio, blocks, load, save


def test_blocks_cover_the_file_exactly(tmp_path: Path, speech: Audio) -> None:
    path = save(tmp_path / "clip.flac", speech)
    parts = list(blocks(path, seconds=2.0))
    assert [b.index for b in parts] == list(range(len(parts)))
    assert parts[0].start == 0 and all(b.start == a.start + a.samples.shape[0] for a, b in itertools.pairwise(parts))
    np.testing.assert_array_equal(np.concatenate([b.samples for b in parts]), load(path).samples)


@pytest.mark.parametrize("suffix", ["wav", "m4a"])
def test_resampled_blocks_join_seamlessly(tmp_path: Path, speech: Audio, suffix: str) -> None:
    path = save(tmp_path / f"clip.{suffix}", speech)
    whole = load(path, sr=16000).samples
    joined = np.concatenate([b.samples for b in blocks(path, seconds=1.5, sr=16000)])
    assert abs(joined.shape[0] - whole.shape[0]) <= 2
    n = min(joined.shape[0], whole.shape[0])
    # One streaming resampler across blocks: no discontinuity at the joins.
    assert np.max(np.abs(joined[100 : n - 100] - whole[100 : n - 100])) < 1e-3


@pytest.mark.slow
def test_blocks_of_a_30_minute_file_stay_under_200_mb(tmp_path: Path, speech: Audio) -> None:
    path = tmp_path / "long.wav"
    seconds = 30 * 60
    with sf.SoundFile(path, "w", samplerate=speech.sample_rate, channels=1, subtype="PCM_16") as out:
        for _ in range(int(seconds // speech.duration) + 1):
            out.write(speech.samples)
    assert sf.info(path).duration >= seconds
    script = (
        "import json, sys\n"
        "from voxmill.audio import blocks\n"
        "frames = sum(b.samples.shape[0] for b in blocks(sys.argv[1], seconds=30.0, sr=16000))\n"
        # VmHWM is this address space's peak; ru_maxrss would carry the forking parent's peak over exec.
        "status = open('/proc/self/status').read()\n"
        "peak = int(status.split('VmHWM:')[1].split()[0]) * 1024\n"
        "print(json.dumps({'frames': frames, 'peak': peak}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    assert result["frames"] >= seconds * 16000
    assert result["peak"] < 200 * 1024 * 1024, f"peak RSS {result['peak'] / 2**20:.0f} MB"
