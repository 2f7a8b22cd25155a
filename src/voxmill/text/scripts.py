"""Which writing systems a voice's language reads, and which letters of a text fall outside them.

espeak-ng does not fail on a script its voice does not know: an English voice reads Chinese as
"Chinese letter, Chinese letter", Russian letter by letter, Arabic as "Arabic mim, Arabic alif".
Counting the letters of each script lets synth say so instead of producing that audio in silence.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

__all__ = ["LATIN", "language_scripts", "letter_scripts", "script_name"]

LATIN = "LATIN"
# The first word of a letter's Unicode name, for the scripts voices exist for; CJK ideographs are Han.
_SCRIPTS = frozenset({
    "LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "HEBREW", "ARABIC", "SYRIAC", "THAANA", "DEVANAGARI",
    "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU", "KANNADA", "MALAYALAM", "SINHALA", "THAI",
    "LAO", "TIBETAN", "MYANMAR", "GEORGIAN", "HANGUL", "ETHIOPIC", "KHMER", "MONGOLIAN", "HIRAGANA",
    "KATAKANA", "BOPOMOFO", "CJK",
})  # fmt: skip
_NAMES = {"CJK": "Han (Chinese characters)", "HANGUL": "Hangul (Korean)", "HIRAGANA": "Hiragana (Japanese)",
          "KATAKANA": "Katakana (Japanese)"}  # fmt: skip

_CYRILLIC = frozenset({"CYRILLIC"})
_ARABIC = frozenset({"ARABIC"})
_DEVANAGARI = frozenset({"DEVANAGARI"})
_HAN = frozenset({"CJK", "BOPOMOFO"})
# Languages (espeak's code before "-") whose own script is not Latin. Latin letters are read by every
# voice (names, acronyms), so they are never counted as foreign.
_NON_LATIN = {
    "ru": _CYRILLIC, "uk": _CYRILLIC, "be": _CYRILLIC, "bg": _CYRILLIC, "mk": _CYRILLIC, "sr": _CYRILLIC,
    "kk": _CYRILLIC, "ky": _CYRILLIC, "tt": _CYRILLIC, "ba": _CYRILLIC, "mn": _CYRILLIC, "tg": _CYRILLIC,
    "ar": _ARABIC, "fa": _ARABIC, "ur": _ARABIC, "ps": _ARABIC, "sd": _ARABIC, "ug": _ARABIC,
    "hi": _DEVANAGARI, "ne": _DEVANAGARI, "mr": _DEVANAGARI, "kok": _DEVANAGARI, "sa": _DEVANAGARI,
    "el": frozenset({"GREEK"}), "grc": frozenset({"GREEK"}), "he": frozenset({"HEBREW"}),
    "hy": frozenset({"ARMENIAN"}), "hyw": frozenset({"ARMENIAN"}), "ka": frozenset({"GEORGIAN"}),
    "bn": frozenset({"BENGALI"}), "as": frozenset({"BENGALI"}), "pa": frozenset({"GURMUKHI"}),
    "gu": frozenset({"GUJARATI"}), "or": frozenset({"ORIYA"}), "ta": frozenset({"TAMIL"}),
    "te": frozenset({"TELUGU"}), "kn": frozenset({"KANNADA"}), "ml": frozenset({"MALAYALAM"}),
    "si": frozenset({"SINHALA"}), "th": frozenset({"THAI"}), "lo": frozenset({"LAO"}),
    "my": frozenset({"MYANMAR"}), "am": frozenset({"ETHIOPIC"}), "km": frozenset({"KHMER"}),
    "dv": frozenset({"THAANA"}), "zh": _HAN, "cmn": _HAN, "yue": _HAN, "hak": _HAN,
    "ja": frozenset({"CJK", "HIRAGANA", "KATAKANA"}), "ko": frozenset({"HANGUL", "CJK"}),
}  # fmt: skip
_LATIN_LANGUAGES = frozenset({
    "af", "an", "az", "bs", "ca", "cs", "cy", "da", "de", "en", "eo", "es", "et", "eu", "fi", "fr", "ga",
    "gd", "gl", "hr", "ht", "hu", "id", "is", "it", "jbo", "la", "lb", "lt", "lv", "ms", "mt", "nb", "nl",
    "no", "om", "pl", "pt", "ro", "sk", "sl", "sq", "sv", "sw", "tn", "tr", "vi", "wo", "yo", "zu",
})  # fmt: skip


def language_scripts(language: str) -> frozenset[str] | None:
    """The scripts a voice of ``language`` (``en``, ``ru``, ``cmn``) reads, Latin included; None when
    the language is not known here (then nothing is called foreign)."""
    code = language.lower().replace("_", "-").split("-")[0]
    if code in _NON_LATIN:
        return _NON_LATIN[code] | {LATIN}
    return frozenset({LATIN}) if code in _LATIN_LANGUAGES else None


def letter_scripts(text: str) -> Counter[str]:
    """Letters of ``text`` per script (Unicode name's first word; ``CJK`` for Han). Letters of scripts
    not listed here (symbols that are letters, rare scripts) are not counted."""
    counts: Counter[str] = Counter()
    if text.isascii():  # the common case, without a name lookup per character
        counts[LATIN] = sum(ch.isalpha() for ch in text)
        return counts if counts[LATIN] else Counter()
    for ch in unicodedata.normalize("NFKC", text):
        if ch.isalpha():
            script = unicodedata.name(ch, "").split(" ", 1)[0].split("-", 1)[0]
            if script in _SCRIPTS:
                counts[script] += 1
    return counts


def script_name(script: str) -> str:
    """``CJK`` -> ``Han (Chinese characters)``, ``CYRILLIC`` -> ``Cyrillic``."""
    return _NAMES.get(script, script.capitalize())
