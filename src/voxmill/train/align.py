"""Monotonic alignment search (VITS), and making it importable where piper's trainer looks for it.

piper-tts ships ``piper.train.vits.monotonic_align`` without its compiled ``core`` (no ``.so`` and no
``core.pyx`` in the wheel or the sdist), so ``fit`` dies at the first batch. This is voxmill's own
implementation, compiled by numba (which librosa, a dependency of the trainer, already brings) the
first time it runs; nothing is built at install time.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import numpy as np

__all__ = ["TRAINER_MODULE", "install", "maximum_path", "maximum_path_each"]

# The package piper's models.py imports (``from . import monotonic_align``); its __init__ then imports
# ``.monotonic_align.core.maximum_path_c``.
TRAINER_MODULE = "piper.train.vits.monotonic_align"
_NEG_INF = -1e9


def _path_one(path: np.ndarray, value: np.ndarray, t_y: int, t_x: int) -> None:
    """Fill ``path[:t_y, :t_x]`` (zeros on entry) with the best monotonic alignment of ``value``.

    Each output frame y is assigned one input token x; x starts at 0, ends at t_x - 1 and moves by 0 or
    1 per frame. ``value`` is overwritten with the running best scores (it is the caller's scratch copy).
    """
    for y in range(t_y):
        # Token x is reachable at frame y only if x <= y and the rest (t_x - 1 - x) fits in t_y - 1 - y.
        for x in range(max(0, t_x + y - t_y), min(t_x, y + 1)):
            stay = value[y - 1, x] if x < y else _NEG_INF
            # From the previous token; token 0 has none (only the very first frame starts there).
            step = value[y - 1, x - 1] if x > 0 else (0.0 if y == 0 else _NEG_INF)
            value[y, x] += max(stay, step)
    x = t_x - 1
    for y in range(t_y - 1, -1, -1):
        path[y, x] = 1
        # Step back a token when forced (x == y) or when arriving from x - 1 scored higher.
        if x != 0 and (x == y or value[y - 1, x] < value[y - 1, x - 1]):
            x -= 1


_compiled: Any = None


def _kernel() -> Any:
    """The numba-compiled batch kernel (compiled once per process, cached on disk when it can be)."""
    global _compiled
    if _compiled is None:
        import numba

        one = numba.njit(cache=True, nogil=True)(_path_one)

        @numba.njit(cache=True, nogil=True)
        def batch(paths: np.ndarray, values: np.ndarray, t_ys: np.ndarray, t_xs: np.ndarray) -> None:
            for b in range(paths.shape[0]):
                one(paths[b], values[b], t_ys[b], t_xs[b])

        _compiled = batch
    return _compiled


def maximum_path_each(paths: np.ndarray, values: np.ndarray, t_ys: np.ndarray, t_xs: np.ndarray) -> None:
    """In place, the signature piper's trainer calls (``maximum_path_c``): int32 ``paths`` [b, t_y, t_x]
    (zeros), float32 ``values`` [b, t_y, t_x] (overwritten), int32 lengths ``t_ys`` and ``t_xs``."""
    _kernel()(paths, values, np.ascontiguousarray(t_ys, np.int32), np.ascontiguousarray(t_xs, np.int32))


def maximum_path(values: np.ndarray, t_ys: np.ndarray, t_xs: np.ndarray) -> np.ndarray:
    """The best monotonic path per batch item as a new int32 array; ``values`` is not changed."""
    scratch = np.array(values, dtype=np.float32, copy=True, order="C")
    paths = np.zeros(scratch.shape, dtype=np.int32)
    maximum_path_each(paths, scratch, t_ys, t_xs)
    return paths


def install() -> bool:
    """Make ``piper.train.vits.monotonic_align`` importable with voxmill's kernel when the wheel lacks
    its compiled core. Returns True when voxmill's kernel is the one the trainer will use."""
    try:
        importlib.import_module(TRAINER_MODULE + ".monotonic_align.core")
        return False  # a working compiled core exists (a source build of piper): leave it
    except ImportError:
        pass
    # The package's __init__ imports the missing core, so registering the two inner names first lets it
    # import, and it then wraps our function exactly as it would wrap the compiled one.
    inner = types.ModuleType(TRAINER_MODULE + ".monotonic_align")
    inner.__path__ = []
    core = types.ModuleType(TRAINER_MODULE + ".monotonic_align.core")
    core.maximum_path_c = maximum_path_each  # type: ignore[attr-defined]
    inner.core = core  # type: ignore[attr-defined]
    sys.modules[inner.__name__] = inner
    sys.modules[core.__name__] = core
    sys.modules.pop(TRAINER_MODULE, None)  # a failed import above may have left it half-made
    importlib.import_module(TRAINER_MODULE)
    return True
