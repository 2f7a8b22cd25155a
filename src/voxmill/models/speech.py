"""Text spoken by a loaded Piper voice: the one way voxmill turns a voice and text into samples.

It lives with the models (not in ``synth``) because more than one application speaks: ``synth`` per
piece in its workers, the server per request, ``train`` to smoke-test a voice it exported.

What Piper's ``PiperVoice.synthesize`` does, with one change: the phonemes of each sentence are cut
into runs of at most ``MAX_PHONEMES`` before they reach the model, whose memory grows with the square
of its input. The text is phonemized once; ordinary sentences are spoken exactly as Piper speaks them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from voxmill.text.phonemes import MAX_PHONEMES, cut_phonemes

__all__ = ["speak_text"]


def speak_text(voice: Any, text: str, config: Any) -> np.ndarray:
    """``text`` spoken by ``voice`` (a loaded ``PiperVoice``) with ``config`` (a ``SynthesisConfig``):
    float32 at the voice's rate and its own level (clipped to [-1, 1], as Piper does unnormalized),
    not trimmed; empty when there is nothing to say.

    Piper may split the text further at its own sentence rules: those parts are joined as spoken."""
    parts = []
    for sentence in voice.phonemize(text):
        for run in cut_phonemes(sentence, MAX_PHONEMES) if sentence else ():
            audio = voice.phoneme_ids_to_audio(voice.phonemes_to_ids(list(run)), config)
            parts.append(np.clip(audio, -1.0, 1.0).astype(np.float32))
    return np.concatenate(parts).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32)
