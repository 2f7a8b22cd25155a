"""A finished run's mark, so that ``--resume`` of a run that already went through every row is a no-op.

A run that went through every row removes its staging (the journal and the staged clips: a corpus'
worth of audio), so a resume cannot skip rows one by one. Instead the run leaves
``OUT/.voxmill/finished.json``: one fingerprint of every row's journal id (row content, audio
identity, clip options) in order, and of the options that shape the dataset (formats, speaker cap,
split, seed, output folder), with the stats it reported. A resume whose rows and options give the
same fingerprint, while every file the run wrote is still there, returns those stats and writes
nothing. Anything else (a changed row, option or file, a missing or damaged mark) runs every row
again, which is always correct. A run with failed rows leaves no mark: a resume retries failed rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from voxmill.audio.io import atomic_path
from voxmill.prepare.stats import PrepareStats

__all__ = ["MARK", "Fingerprint", "forget", "read_mark", "write_mark"]

MARK = "finished.json"
_VERSION = "prepare-finished/1"


class Fingerprint:
    """A running hash of the dataset-shaping options and then each row's journal id, in input order."""

    def __init__(self, shaping: Any) -> None:
        self._hash = hashlib.blake2b(json.dumps([_VERSION, shaping], sort_keys=True).encode(), digest_size=16)

    def add(self, key: str) -> None:
        self._hash.update(key.encode("utf-8", "surrogatepass"))
        self._hash.update(b"\0")  # no two sequences of keys hash as one

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def write_mark(state: Path, fingerprint: str, stats: PrepareStats) -> None:
    data = {"version": _VERSION, "fingerprint": fingerprint, "stats": stats.to_dict()}
    with atomic_path(state / MARK) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def read_mark(state: Path) -> tuple[str, PrepareStats] | None:
    """(fingerprint, stats) of the finished run marked in ``state``, or None (no mark, or not one)."""
    try:
        if not stat.S_ISREG(os.lstat(state / MARK).st_mode):  # a FIFO would hang the read
            return None
        data = json.loads((state / MARK).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != _VERSION or not isinstance(data["fingerprint"], str):
            return None
        return data["fingerprint"], PrepareStats.from_dict(data["stats"])
    except (OSError, KeyError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def forget(state: Path) -> None:
    """Remove the mark: this run changes the output, so it no longer describes it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state / MARK)
