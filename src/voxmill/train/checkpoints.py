"""A run folder's checkpoints: what each holds (read without running code), and which to resume from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import errors

__all__ = ["CheckpointInfo", "best_checkpoint", "list_checkpoints", "read_checkpoint", "resumable"]

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

    ``weights_only``: a checkpoint is a pickle and unpickling can run code; tensors and plain data are all
    a checkpoint needs. ``mmap``: the weights are not read, so a 900 MB file answers in a fraction of a second.
    """
    import torch

    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # a truncated zip, a foreign pickle, a folder: torch raises many kinds
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise errors.DatasetError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {reason})") from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise errors.DatasetError(f"{path}: not a Lightning checkpoint (no state_dict)")
    hparams = state.get("hyper_parameters") or {}
    return CheckpointInfo(
        path=path,
        epoch=int(state.get("epoch") or 0),
        global_step=int(state.get("global_step") or 0),
        hparams=dict(hparams) if isinstance(hparams, dict) else {},
        optimizers=len(state.get("optimizer_states") or []),
    )


def list_checkpoints(folder: Path) -> list[Path]:
    """The run's checkpoints (not those waiting for export), newest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("*.ckpt") if p.is_file() and not p.name.startswith(".")]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name == "last.ckpt"), reverse=True)


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
