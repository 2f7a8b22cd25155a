"""Transcript clean-up every TTS/ASR dataset needs: Unicode NFC, no control characters, one space."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["clean_text"]

_SPACES = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """NFC-normalize, drop control/format characters (zero-width, BOM, bidi marks), collapse spaces.

    Letters, digits and punctuation are kept as written: what a voice should say is the dataset
    author's call, not this function's.
    """
    text = unicodedata.normalize("NFC", text)
    # Cc: control characters (tabs and newlines become spaces first); Cf: zero-width and bidi marks.
    text = "".join(" " if ch in "\t\r\n\v\f" else ch for ch in text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf"))
    return _SPACES.sub(" ", text).strip()
