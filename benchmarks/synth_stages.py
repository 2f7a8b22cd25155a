"""Where voxmill synth's CPU goes, per stage, per second of speech: one text spoken in this process on
one thread, each stage timed with the process's CPU clock.

Stages: planning (markup, normalization, sentence and piece cuts: ``Book.plan``); phonemization
(espeak-ng, through Piper); the encoder (text encoder, durations, flow: one onnxruntime session per
piece); the decoder's low-rate and high-rate parts (windowed, with the context each window recomputes);
the rest of a piece (clipping, trimming, Python); loudness and writing (one gain, a WAV file).
What a real run adds on top (start-up, threads handing pieces over, the engine's journal) is the
difference between its CPU seconds and this sum; synth_vs_piper.py prints both.

usage: python benchmarks/synth_stages.py TEXT...
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

STAGES = ("planning", "phonemes", "encoder", "decoder low", "decoder high", "rest of a piece", "loudness + write")


class _Timed:
    """An onnxruntime session (or part) whose ``run`` adds its CPU time to ``costs[stage]``."""

    def __init__(self, inner: Any, stage: str, costs: Counter[str]) -> None:
        self.inner, self.stage, self.costs = inner, stage, costs

    def run(self, *args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return self.inner.run(*args, **kwargs)
        finally:
            self.costs[self.stage] += time.process_time() - start

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def stage_costs(text_path: Path) -> tuple[dict[str, float], float]:
    """({stage: CPU seconds}, seconds of speech) for ``text_path`` spoken with the default voice."""
    from piper import PiperVoice, SynthesisConfig

    from voxmill.audio.loudness import LoudnessMeter, gain_to
    from voxmill.models.devices import session_options
    from voxmill.models.loaders.vits import load_vits
    from voxmill.models.speech import speak_text
    from voxmill.synth.book import Book
    from voxmill.synth.options import SynthOptions
    from voxmill.synth.voice import resolve_voice, voice_config

    costs: Counter[str] = Counter()
    opts = SynthOptions(input=text_path, output=Path("unused.wav"))
    start = time.process_time()
    text, markdown = opts.read_text()
    spec = resolve_voice(opts.voice)
    book = Book.plan(text, markdown, spec, opts)
    costs["planning"] = time.process_time() - start

    session = load_vits(spec.path, session_options(1), ["CPUExecutionProvider"])
    session.encoder = _Timed(session.encoder, "encoder", costs)
    if session.stages is not None:
        session.stages.low = _Timed(session.stages.low, "decoder low", costs)
        session.stages.high = _Timed(session.stages.high, "decoder high", costs)
    else:
        session.decoder = _Timed(session.decoder, "decoder high", costs)
    config = voice_config(spec)
    voice = PiperVoice(session=session, config=config.piper_config())
    voice.phonemize = _timed(voice.phonemize, "phonemes", costs)  # type: ignore[method-assign]
    synthesis = SynthesisConfig(length_scale=config.length_scale, noise_scale=0.0, noise_w_scale=0.0,
                                normalize_audio=False)  # fmt: skip
    spoken = []
    for chapter in book.pieces:
        for piece in chapter:  # as a synth worker speaks a piece (synth/task.py)
            before = sum(costs.values())
            begin = time.process_time()
            spoken.append(speak_text(voice, piece.text, synthesis))
            costs["rest of a piece"] += time.process_time() - begin - (sum(costs.values()) - before)
    audio = np.concatenate(spoken)
    begin = time.process_time()
    meter = LoudnessMeter(config.sample_rate)
    for block in range(0, audio.size, 65536):  # block-wise, as the writer measures its parts
        meter.add(audio[block : block + 65536])
    gain_db, _ = gain_to(meter.lufs, meter.peak, opts.target_lufs or -23.0, opts.peak_ceiling_db)
    with tempfile.TemporaryDirectory() as folder:
        sf.write(Path(folder) / "out.wav", audio * 10 ** (gain_db / 20), config.sample_rate, subtype="PCM_16")
    costs["loudness + write"] = time.process_time() - begin
    return {s: costs[s] for s in STAGES}, audio.size / config.sample_rate


def _timed(function: Any, stage: str, costs: Counter[str]) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            costs[stage] += time.process_time() - start

    return timed


def main() -> None:
    for name in sys.argv[1:]:
        costs, seconds = stage_costs(Path(name))
        print(f"{Path(name).name}: {seconds:.1f} s of speech, ms of CPU per second of speech (one thread)")
        for stage, cpu in costs.items():
            print(f"  {stage:<18}{cpu / seconds * 1000:>7.1f}")
        print(f"  {'total':<18}{sum(costs.values()) / seconds * 1000:>7.1f}")


if __name__ == "__main__":
    main()
