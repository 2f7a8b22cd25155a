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


def test_cut_phonemes_bounds_every_run_and_loses_nothing() -> None:
    from voxmill.text.phonemes import cut_phonemes

    sentence = list("ðə wˈiːl tˈɜːnd slˈoʊli ") * 60  # ~1,400 phonemes, words of a few phonemes each
    runs = cut_phonemes(sentence, 500)
    assert all(len(run) <= 500 for run in runs) and len(runs) == 3
    assert [p for run in runs for p in run] == sentence
    assert all(run[-1] == " " for run in runs[:-1])  # cut between words
    word = ["a"] * 1201  # no word boundary at all: cut at the limit
    assert [len(run) for run in cut_phonemes(word, 500)] == [500, 500, 201]
    ordinary = list("həlˈoʊ wˈɜːld.")
    assert cut_phonemes(ordinary, 500) == [ordinary]
