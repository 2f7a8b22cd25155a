"""Keep native decoders' chatter off the user's terminal.

libmpg123 (inside libsndfile) writes "Note: Illegal Audio-MPEG-Header ..." and "[layer3.c] error:
dequantization failed" straight to file descriptor 2 while it resyncs over damaged frames. Those are
not errors voxmill can act on (the decoder recovers, or libsndfile reports a failure that becomes our
one-line reason), yet they broke the one-line-per-problem contract of every command. While a native
decode runs, fd 2 points at a private scratch file; what lands there that is not the decoder's is
written back to the real stderr afterwards, so nothing else is lost.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from typing import TypeVar

__all__ = ["quiet_native_stderr", "quietly"]

T = TypeVar("T")

# Lines the MPEG decoder prints on damaged input (mpg123's notes, warnings and per-frame errors).
_DECODER_LINES = ("Note: ", "Warning: ", "[src/libmpg123", "[libmpg123", "mpg123")

_lock = threading.Lock()
_depth = 0
_saved: int | None = None
_scratch: int | None = None


def _begin() -> None:
    global _depth, _saved, _scratch
    with _lock:
        if _depth == 0:
            if _scratch is None:
                handle, name = tempfile.mkstemp(prefix="voxmill-stderr-")
                os.unlink(name)  # nothing to clean up, whatever kills the process
                _scratch = handle
            os.ftruncate(_scratch, 0)
            os.lseek(_scratch, 0, os.SEEK_SET)
            saved = os.dup(2)
            try:
                os.dup2(_scratch, 2)
            except OSError:
                os.close(saved)
                raise
            _saved = saved
        _depth += 1


def _end() -> None:
    global _depth, _saved
    with _lock:
        _depth -= 1
        if _depth > 0 or _saved is None or _scratch is None:
            return
        os.dup2(_saved, 2)
        os.close(_saved)
        _saved = None
        size = os.lseek(_scratch, 0, os.SEEK_END)
        if size == 0:
            return
        os.lseek(_scratch, 0, os.SEEK_SET)
        text = os.read(_scratch, min(size, 1 << 20)).decode("utf-8", "replace")
    kept = [line for line in text.splitlines(keepends=True) if not line.lstrip().startswith(_DECODER_LINES)]
    if kept:
        with contextlib.suppress(OSError):
            os.write(2, "".join(kept).encode("utf-8"))


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Around a call into a native decoder: its stderr lines are dropped, anything else is replayed.

    Re-entrant and shared by threads (one redirect while any holder is inside). Never hold it across
    a ``yield`` to the caller: the caller's own stderr would be delayed until it is released.
    """
    try:
        _begin()
    except OSError:  # no fd 2, no temp dir: decode without the filter rather than not at all
        yield
        return
    try:
        yield
    finally:
        _end()


def quietly(iterator: Iterator[T]) -> Iterator[T]:
    """``iterator`` with each step (not the time between steps) inside :func:`quiet_native_stderr`."""
    while True:
        with quiet_native_stderr():
            try:
                item = next(iterator)
            except StopIteration:
                return
        yield item
