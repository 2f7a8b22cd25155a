"""voxmill's phonemizer gives exactly what Piper's training phonemizer gives."""

from __future__ import annotations

import pytest
from piper.phonemize_espeak import EspeakPhonemizer

from voxmill.text.phonemes import Phonemizer, UnknownVoiceError

TEXTS = {
    "en-us": [
        "Hello there, world. Mr. Smith went to Paris; it rained: a lot!",
        "Numbers like 1,234 and dates like 12/05/2024 are read out.",
        "No final stop",
        "",
    ],
    "de": ["Grüße aus München. Ich heiße Jürgen, und du?"],
    "fr": ["Où est la bibliothèque ? Je ne sais pas, désolé."],
}


@pytest.mark.parametrize("voice", list(TEXTS))
def test_same_phonemes_as_piper(voice: str) -> None:
    piper = EspeakPhonemizer()
    ours = Phonemizer(voice)
    for text in TEXTS[voice]:
        expected = ["".join(sentence) for sentence in piper.phonemize(voice, text)]
        assert ours.sentences(text) == expected, text


def test_two_voices_in_one_process_do_not_mix() -> None:
    english, german = Phonemizer("en-us"), Phonemizer("de")
    text = "Hallo Welt."
    assert german.sentences(text) != english.sentences(text)
    assert german.sentences(text) == ["".join(s) for s in EspeakPhonemizer().phonemize("de", text)]


def test_unknown_voice_is_a_config_error() -> None:
    with pytest.raises(UnknownVoiceError, match="zz-nonexistent"):
        Phonemizer("zz-nonexistent")
