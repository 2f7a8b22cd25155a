"""A run folder's checkpoints: what each holds (read without running code), and which to resume from."""

from __future__ import annotations

import collections
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import errors

__all__ = ["CheckpointInfo", "best_checkpoint", "is_best_name", "list_checkpoints", "read_checkpoint", "resumable"]

_BEST = re.compile(r"^best-epoch=(?P<epoch>\d+)-val_mel=(?P<score>[-+0-9.eE]+|nan|inf)\.ckpt$")


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about itself. ``step`` is voxmill's (one batch), ``global_step`` Lightning's."""

    path: Path
    epoch: int
    global_step: int
    hparams: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    optimizers: int = 0

    @property
    def step(self) -> int:
        # Two optimizers (generator, discriminator) each advance Lightning's global_step once per batch.
        return self.global_step // 2 if self.optimizers >= 2 else self.global_step


def read_checkpoint(path: Path) -> CheckpointInfo:
    """The epoch, step and hyper-parameters of a Lightning checkpoint; DatasetError when it cannot be read.

    Nothing in the file runs: a checkpoint is a pickle, and unpickling can run code. voxmill's own
    checkpoints are read without torch (:func:`_read_plain`), so a ``voxmill train`` that resumes keeps
    torch out of the parent's memory (~200 MB) while the child trains; anything else goes to torch's
    ``weights_only`` loader (tensors and plain data only), with ``mmap`` so the weights are not read.
    """
    try:
        state: Any = _read_plain(path)
    except Exception:  # another format, another kind of object, a broken file: torch decides, and says why
        state = _read_torch(path)
    if not isinstance(state, dict) or "state_dict" not in state:
        raise errors.DatasetError(f"{path}: not a Lightning checkpoint (no state_dict)")
    hparams = state.get("hyper_parameters") or {}
    return CheckpointInfo(
        path=path,
        epoch=_count(path, "epoch", state.get("epoch")),
        global_step=_count(path, "global_step", state.get("global_step")),
        hparams=dict(hparams) if isinstance(hparams, dict) else {},
        optimizers=len(state.get("optimizer_states") or []),
    )


def _count(path: Path, key: str, value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.DatasetError(f"{path}: not a Lightning checkpoint ({key} is {str(value)[:40]!r}, not a count)")
    return value


def _read_torch(path: Path) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a truncated zip, a foreign pickle, a folder: torch raises many kinds
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise errors.DatasetError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {reason})") from None


class _Unread:
    """A tensor or storage of a checkpoint, not read: only the plain data around them is wanted."""

    __slots__ = ()


_UNREAD = _Unread()


def _unread(*args: Any, **kwargs: Any) -> _Unread:
    return _UNREAD


class _PlainUnpickler(pickle.Unpickler):
    """Resolves only what a Lightning checkpoint of piper's model holds, each to an inert stand-in; any
    other name stops the read (and torch's ``weights_only`` loader gets the file)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
            return _unread
        if module == "torch" and name.endswith("Storage") and name.isidentifier():
            return _Unread
        raise pickle.UnpicklingError(f"{module}.{name} is not read without torch")

    def persistent_load(self, pid: Any) -> Any:
        return _UNREAD


# data.pkl of a medium checkpoint is ~0.5 MB; a hundred times that is no checkpoint voxmill made.
_MAX_PICKLE = 64 * 1024 * 1024


def _read_plain(path: Path) -> Any:
    """The plain data of a checkpoint in torch's zip format, tensors left unread, without importing torch."""
    with zipfile.ZipFile(path) as archive:
        [entry] = [i for i in archive.infolist() if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
        if entry.file_size > _MAX_PICKLE:
            raise ValueError("data.pkl is too large")
        with archive.open(entry) as raw:
            return _PlainUnpickler(raw).load()


def list_checkpoints(folder: Path) -> list[Path]:
    """The run's checkpoints (not those waiting for export), newest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("*.ckpt") if p.is_file() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name == "last.ckpt"), reverse=True)


def is_best_name(name: str) -> bool:
    """Whether ``name`` is what the run's best-checkpoint callback calls its file."""
    return _BEST.match(name) is not None


def best_checkpoint(folder: Path) -> Path | None:
    """The checkpoint with the lowest validation mel loss (the name ModelCheckpoint gave it)."""
    scored = []
    for path in list_checkpoints(folder):
        match = _BEST.match(path.name)
        if match:
            try:
                scored.append((float(match["score"]), -path.stat().st_mtime_ns, path))
            except (ValueError, OSError):
                continue
    return min(scored)[2] if scored else None


def resumable(folder: Path) -> tuple[CheckpointInfo | None, list[str]]:
    """The newest checkpoint that loads, and a warning for each newer one that does not (a truncated
    file from a full disk, a copy cut short): training goes on from the one before it."""
    skipped: list[str] = []
    candidates = list_checkpoints(folder)
    infos = []
    for path in candidates:
        try:
            infos.append(read_checkpoint(path))
        except errors.DatasetError as exc:
            skipped.append(f"skipped {path.name}: {exc}")
    if not infos:
        return None, skipped
    newest = max(infos, key=lambda info: (info.global_step, info.path.name == "last.ckpt"))
    return newest, skipped
