"""Where a voice's split (:mod:`.vits`) is cached, and the one reader of that cache.

The cache is a folder per model file (``split.json`` + ``encoder.onnx`` with its weights in ``encoder.data``
+ ``decoder.onnx``, and ``decoder_high.onnx`` when the decoder is cut in two stages) that only
:func:`~voxmill.models.loaders.vits.write_split` makes; in it, ``encoder-KEY/`` holds the encoder as
onnxruntime lays it out for one kind of CPU (:func:`laid_out_folder`; ~56 MB, made at the first load).
Anything else found there (a ``split.json`` that is not JSON or lacks a field, a FIFO or a symlink where
a file should be, a truncated graph: a disk that filled up, a user or a tool that edited it) is not
trusted: :func:`read_split` answers None and the loader discards the folder and splits again, instead of
failing every load of the voice with a KeyError (or blocking forever on a FIFO) until someone deletes
the cache by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "ENCODER_DATA",
    "HIGH_PART",
    "LAID_DATA",
    "LAID_GRAPH",
    "REWRITE_VERSION",
    "cache_root",
    "discard",
    "laid_out_complete",
    "laid_out_folder",
    "prune_older",
    "read_split",
    "split_folder",
]

# Bump when the rewrite changes, so caches made by an older voxmill are not used.
REWRITE_VERSION = 8
# split.json is a few dozen bytes; a larger one is not ours.
MAX_META_BYTES = 64 * 1024
# The encoder's weights, beside its graph (loaders/vits.py: _optimize).
ENCODER_DATA = "encoder.data"
PARTS = ("encoder.onnx", ENCODER_DATA, "decoder.onnx")
# The decoder's high-rate part, when the split cut the decoder in two (split.json then names the cut).
HIGH_PART = "decoder_high.onnx"
# The encoder laid out for one kind of CPU (laid_out_folder): its graph and the weights beside it.
LAID_GRAPH, LAID_DATA = "encoder.onnx", ENCODER_DATA


def cache_root() -> Path:
    """``$VOXMILL_CACHE``, else ``$XDG_CACHE_HOME/voxmill``, else ``~/.cache/voxmill``."""
    if os.environ.get("VOXMILL_CACHE"):
        return Path(os.environ["VOXMILL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "voxmill"


def split_folder(path: Path, version: int = REWRITE_VERSION) -> Path:
    """Where the split of ``path`` is cached (by the rewrite ``version``): a new folder whenever the file
    or the rewrite changes."""
    from onnxruntime import __version__ as runtime  # the encoder is cached as its optimized graph

    info = path.stat()
    # ctime and inode too: a voice rewritten in place with its size and mtime restored is another voice.
    key = f"{version}|{runtime}|{path.resolve()}|{info.st_size}|{info.st_mtime_ns}|{info.st_ctime_ns}"
    key += f"|{info.st_ino}"
    return cache_root() / "vits" / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def laid_out_folder(folder: Path) -> Path | None:
    """Where the split in ``folder`` keeps its encoder as onnxruntime lays it out for this CPU (its
    blocked-convolution layout, sized to the CPU's vector width: :func:`vits._encoder_session`); None
    where the CPU's features cannot be read (no such cache then). Named by what that layout depends on:
    onnxruntime's version, the machine, the CPU's feature flags (a cache folder shared by two machines
    keeps one per kind of CPU)."""
    import platform

    from onnxruntime import __version__ as runtime

    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            flags = next((line for line in info if line.startswith(("flags", "Features"))), None)
    except OSError:
        return None
    if flags is None:
        return None
    features = " ".join(sorted(flags.partition(":")[2].split()))
    key = hashlib.sha256(f"{runtime}|{platform.machine()}|{features}".encode()).hexdigest()[:16]
    return folder / f"encoder-{key}"


def prune_older(path: Path) -> None:
    """Remove the splits of this same model file that an older rewrite made (``REWRITE_VERSION`` bumped by
    an upgrade; same onnxruntime): no run of this voxmill reads them again, and each is ~60 MB that would
    stay in the cache for ever. Only the folders named by those versions' keys of this very file go (a
    symlink among them is removed, not followed)."""
    for version in range(1, REWRITE_VERSION):
        folder = split_folder(path, version)
        if os.path.lexists(folder):
            discard(folder)


def _regular(path: Path, kind: int = stat.S_IFREG) -> bool:
    """``path`` itself (not what a symlink points at) is a regular file (or, with ``kind``, a folder)."""
    try:
        return stat.S_IFMT(os.lstat(path).st_mode) == kind
    except OSError:
        return False


def laid_out_complete(laid: Path) -> bool:
    """``laid`` is itself a folder holding the laid-out graph and its weights as plain files (no symlink:
    one planted there is never followed)."""
    return _regular(laid, stat.S_IFDIR) and all(_regular(laid / name) for name in (LAID_GRAPH, LAID_DATA))


def read_split(folder: Path) -> dict[str, Any] | None:
    """The cached split's ``split.json``, checked: None when there is none or it is not one
    ``write_split`` made (see the module docstring). ``{"vits": False, ...}`` is a valid answer."""
    meta_path = folder / "split.json"
    if not _regular(folder, stat.S_IFDIR) or not _regular(meta_path):
        return None
    try:
        if meta_path.stat().st_size > MAX_META_BYTES:
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("vits"), bool):
        return None
    if not meta["vits"]:
        reason = meta.get("reason")
        return meta if reason is None or isinstance(reason, str) else None
    latent, channels = meta.get("latent"), meta.get("channels")
    if not isinstance(latent, str) or not latent or isinstance(channels, bool) or not isinstance(channels, int):
        return None
    if channels < 1 or not all(_regular(folder / part) for part in PARTS):
        return None
    cut = meta.get("cut")
    if cut is None:  # one decoder part: a high-rate part beside it means split.json lost its "cut"
        return None if os.path.lexists(folder / HIGH_PART) else meta
    if not isinstance(cut, str) or not cut or not _regular(folder / HIGH_PART):
        return None
    measured = meta.get("reach")  # (low hop, low reach, high hop, high reach): optional, probed if absent
    if measured is not None and not _reach(measured):
        return None
    return meta


def _reach(value: Any) -> bool:
    """A stored probe of the decoder's two parts: four whole numbers, hops of 1-4096, reaches of 0-4096
    (anything else was not written by the split, and windows sized from it would speak wrong samples)."""
    numbers = isinstance(value, list) and len(value) == 4
    numbers = numbers and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 4096 for v in value)
    return numbers and value[0] >= 1 and value[2] >= 1


def discard(folder: Path) -> None:
    """Remove an unusable cached split (a symlink is removed, never followed)."""
    with contextlib.suppress(OSError):
        if folder.is_symlink() or not folder.is_dir():
            folder.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)
