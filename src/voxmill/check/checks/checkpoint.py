"""A training checkpoint to resume from: loads, epoch and step, hyper-parameters vs config, optimizer state."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from voxmill.check.data import CheckData
from voxmill.check.findings import Finding, Severity, finding

__all__ = ["newest_checkpoint", "run"]


def newest_checkpoint(path: Path) -> Path | None:
    """The path itself, or the newest ``*.ckpt`` under a folder (e.g. ``lightning_logs/``)."""
    if path.is_file():
        return path
    found = sorted(path.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def run(data: CheckData, path: Path | None) -> list[Finding]:
    if path is None:
        return [finding("checkpoint.load", Severity.SKIP, "no --checkpoint given")]
    if not path.exists():
        return [finding("checkpoint.load", Severity.FAIL, f"{path}: no such file or folder")]
    ckpt = newest_checkpoint(path)
    if ckpt is None:
        return [finding("checkpoint.load", Severity.FAIL, f"{path}: no .ckpt file in it")]
    if importlib.util.find_spec("torch") is None:
        return [finding("checkpoint.load", Severity.SKIP, "torch not installed: checkpoint not inspected",
                        hint="pip install 'voxmill[train]'")]  # fmt: skip
    import torch

    try:
        # weights_only: a checkpoint is a pickle, and unpickling runs code; tensors and plain data suffice.
        state: Any = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a damaged zip or pickle
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [
            finding(
                "checkpoint.load",
                Severity.FAIL,
                f"{ckpt}: cannot be loaded ({type(exc).__name__}: {reason[:200]})",
                hint="the file is truncated or corrupt; resume from an earlier checkpoint",
            )
        ]
    if not isinstance(state, dict) or "state_dict" not in state:
        return [finding("checkpoint.load", Severity.FAIL, f"{ckpt}: not a Lightning checkpoint (no state_dict)")]
    epoch, step = state.get("epoch"), state.get("global_step")
    out = [finding("checkpoint.load", Severity.PASS, f"{ckpt.name}: epoch {epoch}, global step {step}")]
    hparams = state.get("hyper_parameters") or {}
    expected = _expected(data)
    wrong = [
        f"{key}: checkpoint {hparams.get(key)}, {where} {value}"
        for key, (value, where) in expected.items()
        if key in hparams and hparams.get(key) != value
    ]
    if wrong:
        out.append(
            finding(
                "checkpoint.hparams",
                Severity.FAIL,
                f"{len(wrong)} hyper-parameters disagree with the config/data",
                wrong,
                "a resumed run would load mismatched weights; use a matching checkpoint or fix the config",
            )
        )
    elif hparams:
        out.append(finding("checkpoint.hparams", Severity.PASS, "sample rate, symbols and speakers agree"))
    else:
        out.append(finding("checkpoint.hparams", Severity.WARN, "no hyper_parameters in the checkpoint"))
    optimizers = state.get("optimizer_states")
    out.append(
        finding("checkpoint.resumable", Severity.PASS, f"{len(optimizers)} optimizer states: training can resume")
        if optimizers
        else finding(
            "checkpoint.resumable",
            Severity.WARN,
            "no optimizer state: usable to fine-tune from, not to resume",
            hint="resume from a checkpoint saved by the trainer (not a weights-only export)",
        )
    )
    return out


def _expected(data: CheckData) -> dict[str, tuple[Any, str]]:
    config = data.config or {}
    expected: dict[str, tuple[Any, str]] = {}
    rate = (config.get("audio") or {}).get("sample_rate")
    if rate is not None:
        expected["sample_rate"] = (rate, "config")
    if config.get("num_symbols") is not None:
        expected["num_symbols"] = (config["num_symbols"], "config")
    if config.get("num_speakers") is not None:
        expected["num_speakers"] = (config["num_speakers"], "config")
    elif data.rows:
        expected["num_speakers"] = (max(1, len(data.speakers)), "metadata")
    return expected
