"""Corpus readers shared by ``prepare`` and ``check``: metadata tables and folders -> one Row per clip.

A leaf, like ``audio`` and ``text``: it imports only ``errors``. Both applications read the same
layouts, and applications may not import each other, so the readers live below them.
"""

from voxmill.corpus.piper import PIPER_SEGMENT_SAMPLES, piper_min_seconds
from voxmill.corpus.sources import AUDIO_SUFFIXES, FORMATS, Row, Source, parse_source, read_rows

__all__ = [
    "AUDIO_SUFFIXES",
    "FORMATS",
    "PIPER_SEGMENT_SAMPLES",
    "Row",
    "Source",
    "parse_source",
    "piper_min_seconds",
    "read_rows",
]
