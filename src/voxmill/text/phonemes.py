"""espeak-ng phonemes exactly as Piper training makes them, for one voice per process.

Piper's ``EspeakPhonemizer.phonemize`` re-selects the voice on every call, which is half its cost
(0.18 ms of 0.37 ms per line); a dataset phonemizes with one voice, so it is selected once here.
The per-clause processing below is the same as Piper's (checked by a test against it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from voxmill import errors

__all__ = ["MAX_PHONEMES", "Phonemizer", "UnknownVoiceError", "cut_phonemes"]

# Phonemes a VITS voice is given at once. Its text encoder's attention grows with the square of its
# input (a 50,000-letter word once took 18.9 GB), so whatever the text, a run of phonemes longer than
# this is cut. A 300-character sentence (synth's default piece) has ~300, so ordinary text stays whole.
# Measured, synth with one worker: 10,000 letters in 500-phoneme runs peak at 380 MiB; uncut, 2,060
# phonemes took 1.4 GiB and 2,600 1.8 GiB.
MAX_PHONEMES = 500

# espeak marks words read in another language as "(en)word(de)"; Piper drops the marks.
_LANG_SWITCH = re.compile(r"\([^)]+\)")
# espeak-ng is one process-wide state: the voice selected last is the one that speaks.
_selected: list[str | None] = [None]


class UnknownVoiceError(errors.ConfigError):
    """espeak-ng has no voice by this name."""


class Phonemizer:
    """Text -> Piper's phonemes (one string per sentence, one code point per phoneme)."""

    def __init__(self, voice: str) -> None:
        from piper import espeakbridge
        from piper.phonemize_espeak import ESPEAK_DATA_DIR

        self.voice = voice
        self._bridge = espeakbridge
        if _selected[0] is None:
            espeakbridge.initialize(str(ESPEAK_DATA_DIR))
            _selected[0] = ""
        self._select()

    def _select(self) -> None:
        if _selected[0] != self.voice:
            try:
                self._bridge.set_voice(self.voice)
            except RuntimeError:
                raise UnknownVoiceError(f"espeak-ng has no voice '{self.voice}'") from None
            _selected[0] = self.voice

    def sentences(self, text: str) -> list[str]:
        """Phonemes of each sentence of ``text``; characters are NFD code points, as Piper's ids map them."""
        self._select()
        out: list[str] = []
        current: list[str] = []
        for phonemes, terminator, end_of_sentence in self._bridge.get_phonemes(text):
            clause = _LANG_SWITCH.sub("", phonemes) + terminator
            if terminator in (",", ":", ";"):
                clause += " "  # a clause, not a sentence, ends here
            current.append(unicodedata.normalize("NFD", clause))
            if end_of_sentence:
                out.append("".join(current))
                current = []
        if current:
            out.append("".join(current))
        return out


def cut_phonemes(phonemes: Sequence[str], limit: int = MAX_PHONEMES) -> list[Sequence[str]]:
    """``phonemes`` (one sentence, one phoneme per item) in runs of at most ``limit``.

    Cuts after the last word boundary (a space) in the second half of the window, else at ``limit``
    (one unbroken "word" of phonemes: digits, emoji names, a hostile token). Ordinary sentences come
    back whole, as the same object.
    """
    if len(phonemes) <= limit:
        return [phonemes]
    runs: list[Sequence[str]] = []
    start = 0
    while len(phonemes) - start > limit:
        end = start + limit
        cut = end
        for i in range(end - 1, start + limit // 2, -1):
            if phonemes[i] == " ":
                cut = i + 1
                break
        runs.append(phonemes[start:cut])
        start = cut
    runs.append(phonemes[start:])
    return runs
