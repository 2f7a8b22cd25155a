"""A finished run's mark, so that ``--resume`` of a run that already went through every row is a no-op.

A run that went through every row removes its staging (the journal and the staged clips: a corpus'
worth of audio), so a resume cannot skip rows one by one. Instead the run leaves
``OUT/.voxmill/finished.json``: one fingerprint of every row's journal id (row content, audio
identity, clip options) in order, and of the options that shape the dataset (formats, speaker cap,
split, seed, output folder), with the stats it reported, and a digest of the identity of every file
it wrote (size, modification and change time, inode). A resume whose rows and options give the same
fingerprint, while every file the run wrote is still there as it was written, returns those stats and
writes nothing. Anything else (a changed row, option or file, an output file deleted, edited or
replaced, a missing, damaged or oversized mark) runs every row again, which is always correct. A run
with failed rows leaves no mark: a resume retries failed rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from voxmill.audio.io import atomic_path
from voxmill.prepare.stats import PrepareStats

__all__ = ["MARK", "Fingerprint", "forget", "outputs_digest", "read_mark", "write_mark"]

MARK = "finished.json"
_VERSION = "prepare-finished/2"  # 2: with the digest of the files written
MAX_MARK_BYTES = 1 << 24  # 16 MiB: far above any real mark (counts, reasons, hours per label)


class Fingerprint:
    """A running hash of the dataset-shaping options and then each row's journal id, in input order."""

    def __init__(self, shaping: Any) -> None:
        self._hash = hashlib.blake2b(json.dumps([_VERSION, shaping], sort_keys=True).encode(), digest_size=16)

    def add(self, key: str) -> None:
        self._hash.update(key.encode("utf-8", "surrogatepass"))
        self._hash.update(b"\0")  # no two sequences of keys hash as one

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def outputs_digest(folder: Path, names: Iterable[str]) -> str | None:
    """A digest of the identity of each file ``names`` (relative to ``folder``): size, modification
    and change time, inode. None when one is missing, not a regular file (a symlink planted since) or
    not a name inside the folder. Existence alone would let a resume call an edited ``metadata.csv``
    or a truncated clip finished; ``os.utime`` can restore an mtime, never a ctime."""
    digest = hashlib.blake2b(_VERSION.encode(), digest_size=16)
    for name in sorted(names):
        if not name or "\0" in name or os.path.isabs(name) or ".." in Path(name).parts:
            return None
        try:
            info = os.lstat(folder / name)
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        digest.update(f"{name}\0{info.st_size}|{info.st_mtime_ns}|{info.st_ctime_ns}|{info.st_ino}\0".encode(
            "utf-8", "surrogatepass"))  # fmt: skip
    return digest.hexdigest()


def write_mark(state: Path, fingerprint: str, outputs: str | None, stats: PrepareStats) -> None:
    """The mark of a finished run: its fingerprint, the :func:`outputs_digest` of what it wrote, its stats."""
    if outputs is None:  # a file it wrote is already gone: nothing a resume could trust
        return
    data = {"version": _VERSION, "fingerprint": fingerprint, "outputs": outputs, "stats": stats.to_dict()}
    with atomic_path(state / MARK) as tmp:
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def read_mark(state: Path) -> tuple[str, str, PrepareStats] | None:
    """(fingerprint, outputs digest, stats) of the finished run marked in ``state``, or None (no mark,
    or not one: damaged, of another version, a FIFO, or larger than any mark a run writes)."""
    try:
        info = os.lstat(state / MARK)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MARK_BYTES:  # a FIFO would hang the read
            return None
        with open(state / MARK, encoding="utf-8") as fh:
            data = json.loads(fh.read(MAX_MARK_BYTES + 1))  # bounded even if it grows after the lstat
        if not isinstance(data, dict) or data.get("version") != _VERSION:
            return None
        if not isinstance(data["fingerprint"], str) or not isinstance(data["outputs"], str):
            return None
        return data["fingerprint"], data["outputs"], PrepareStats.from_dict(data["stats"])
    except (OSError, KeyError, ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError: ValueErrors
        return None


def forget(state: Path) -> None:
    """Remove the mark: this run changes the output, so it no longer describes it."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state / MARK)
