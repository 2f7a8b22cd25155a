"""Move large arrays between processes by reference: a file in shared memory, not a pickle.

Pickling a 10-minute 48 kHz array costs a copy into the pipe and another out of it, in each
direction. ``share(array)`` writes it once to ``/dev/shm`` (RAM-backed; falls back to the temp dir)
and returns a tiny picklable :class:`SharedArray`; the receiver maps it without copying and
``release()`` deletes it. numpy's .npy format keeps dtype and shape, so no hand-written header.

A file in ``/dev/shm`` is only visible on its own machine: a backend whose workers may be elsewhere
(Ray: ``Backend.inline_arrays``) has arrays travel inside the reference, through its own transport, in
its workers and, while one of its runs is going, in the process that runs it (:func:`inline_arrays`).

Files are named for the process that runs the pool (a worker's parent), which removes what is left of
its own when it exits (results a cancelled run never took, a worker's half-written file), and those of
owners that died without doing so (SIGKILL, a power cut) when it starts sharing: RAM-backed files
otherwise outlive the run until the next reboot.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["SharedArray", "begin_inline", "end_inline", "inline_arrays", "own_spool", "share", "spool_owner"]

# Runs going on in this process whose transport carries arrays by value. A count, not a flag: runs
# may overlap (two generators consumed in turn), and arrays stay inline while any one of them needs it
# (inline is correct everywhere; by file only on one machine).
_inline_runs = 0
_inline_lock = threading.Lock()
_owner: int | None = None  # whose run this process's shared files belong to; None: its own
_owned = False
_NAME = re.compile(r"voxmill-(\d+)-[0-9a-f]+\.(npy|tmp)$")


def begin_inline() -> None:
    """From now until the matching :func:`end_inline`, :func:`share` keeps arrays in the reference (for
    a transport that carries arrays itself, Ray's object store) instead of in a file."""
    global _inline_runs
    with _inline_lock:
        _inline_runs += 1


def end_inline() -> None:
    global _inline_runs
    with _inline_lock:
        _inline_runs = max(0, _inline_runs - 1)


@contextlib.contextmanager
def inline_arrays(on: bool = True) -> Iterator[None]:
    """Arrays shared inside the block travel in the reference when ``on`` (a run on such a backend)."""
    if not on:
        yield
        return
    begin_inline()
    try:
        yield
    finally:
        end_inline()


def _spool_dir() -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return shm
    return Path(tempfile.gettempdir())


def spool_owner(pid: int) -> None:
    """In a worker process: the arrays it shares belong to ``pid``'s run (its parent), which cleans up."""
    global _owner
    _owner = pid


def _remove_files(orphans: bool) -> None:
    """This process's files (at exit), or with ``orphans`` those whose owner is no longer running."""
    import psutil  # here, not at import: workers import this module and never clean up

    me = os.getpid()
    for path in _spool_dir().glob("voxmill-*"):
        match = _NAME.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        doomed = pid != me and not psutil.pid_exists(pid) if orphans else pid == me
        if doomed:
            path.unlink(missing_ok=True)


def own_spool() -> None:
    """In the process that runs pools (once): remove its shared files at exit, and now those of owners
    that died without doing so. Nothing in a worker: its parent owns what it shares."""
    global _owned
    if _owned or _owner is not None:
        return
    _owned = True
    atexit.register(_remove_files, orphans=False)
    _remove_files(orphans=True)


@dataclass(frozen=True)
class SharedArray:
    """A reference to an array in shared memory; pickles as a path, a few dozen bytes (or, kept inline,
    as the array itself)."""

    path: str
    data: np.ndarray | None = field(default=None, compare=False, repr=False)

    def get(self, copy: bool = False) -> np.ndarray:
        """The array, memory-mapped read-only (``copy=True`` for a private, writable copy)."""
        array = self.data if self.data is not None else np.load(self.path, mmap_mode="r")
        return np.array(array) if copy else array

    def take(self) -> np.ndarray:
        """A private copy of the array, and the shared file removed."""
        try:
            return self.get(copy=True)
        finally:
            self.release()

    def release(self) -> None:
        if self.data is None:
            Path(self.path).unlink(missing_ok=True)


def share(array: np.ndarray) -> SharedArray:
    """Put ``array`` in shared memory; whoever ends up with the reference must ``take()`` or ``release()``."""
    if _inline_runs:
        return SharedArray("", np.ascontiguousarray(array))
    own_spool()
    path = _spool_dir() / f"voxmill-{_owner or os.getpid()}-{uuid.uuid4().hex}.npy"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
    os.replace(tmp, path)  # a reader never sees a half-written array
    return SharedArray(str(path))
