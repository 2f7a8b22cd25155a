"""Corpus readers shared by ``prepare`` and ``check``: metadata tables and folders -> one Row per clip;
and what the dataset layouts ``prepare`` and ``segment`` write contain (:mod:`voxmill.corpus.layouts`).

A leaf, like ``audio`` and ``text``: it imports only ``errors``. Both applications read the same
layouts, and applications may not import each other, so the readers live below them.
"""

from voxmill.corpus.layouts import LAYOUTS, DatasetClip, dataset_files
from voxmill.corpus.names import collision_key, file_name
from voxmill.corpus.piper import PIPER_SEGMENT_SAMPLES, piper_min_seconds
from voxmill.corpus.rows import RESERVED_LABELS, Problem, Row, Source, check_label, parse_source
from voxmill.corpus.sources import AUDIO_SUFFIXES, FORMATS, read_rows
from voxmill.corpus.tables import join_fields, split_fields

__all__ = [
    "AUDIO_SUFFIXES",
    "FORMATS",
    "LAYOUTS",
    "PIPER_SEGMENT_SAMPLES",
    "RESERVED_LABELS",
    "Problem",
    "Row",
    "Source",
    "DatasetClip",
    "check_label",
    "collision_key",
    "dataset_files",
    "file_name",
    "join_fields",
    "parse_source",
    "piper_min_seconds",
    "read_rows",
    "split_fields",
]
