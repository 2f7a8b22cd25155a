"""A training checkpoint to resume from: loads, epoch and step, hyper-parameters vs config, optimizer state."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from voxmill.check.data import CheckData
from voxmill.check.findings import Finding, Severity, finding
from voxmill.corpus.piper import PIPER_NUM_SYMBOLS

__all__ = ["newest_checkpoint", "progress", "run", "steps_of"]


def steps_of(state: dict[str, Any]) -> int | None:
    """The checkpoint's step in voxmill's unit, one batch. Lightning's ``global_step`` counts optimizer
    steps: piper's VitsModel steps two optimizers (generator, discriminator) per batch."""
    step = state.get("global_step")
    if not isinstance(step, int) or isinstance(step, bool):
        return None
    optimizers = state.get("optimizer_states")
    return step // len(optimizers) if isinstance(optimizers, list) and optimizers else step


def progress(state: dict[str, Any]) -> str:
    """``"epoch 3, step 60 (global_step 120: 2 optimizers step per batch)"``."""
    step, global_step = steps_of(state), state.get("global_step")
    optimizers = state.get("optimizer_states")
    per_batch = len(optimizers) if isinstance(optimizers, list) else 0
    told = f"epoch {state.get('epoch')}, step {step}"
    return told + (f" (global_step {global_step}: {per_batch} optimizers step per batch)" if per_batch > 1 else "")


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
    optimizers = state.get("optimizer_states")
    out = [finding("checkpoint.load", Severity.PASS, f"{ckpt.name}: {progress(state)}")]
    hparams = state.get("hyper_parameters")
    hparams = hparams if isinstance(hparams, dict) else {}
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
                f"{len(wrong)} hyper-parameters disagree with the config/data the trainer uses",
                wrong,
                _hint(hparams, expected),
            )
        )
    elif hparams:
        out.append(finding("checkpoint.hparams", Severity.PASS, "sample rate, symbols and speakers agree"))
    else:
        out.append(finding("checkpoint.hparams", Severity.WARN, "no hyper_parameters in the checkpoint"))
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
    """What the trainer builds its model with: the dataset's config.json (or --config, e.g. a run
    folder's config.json, the one the trainer wrote), else the speakers the metadata names."""
    config = data.config or {}
    where = str(data.config_path or "config")
    expected: dict[str, tuple[Any, str]] = {}
    audio = config.get("audio")
    rate = audio.get("sample_rate") if isinstance(audio, dict) else None
    if rate is not None:
        expected["sample_rate"] = (rate, where)
    if config.get("num_symbols") is not None:
        expected["num_symbols"] = (config["num_symbols"], where)
    if config.get("num_speakers") is not None:
        expected["num_speakers"] = (config["num_speakers"], where)
    elif data.rows:
        expected["num_speakers"] = (max(1, len(data.speakers)), "metadata")
    return expected


def _hint(hparams: dict[str, Any], expected: dict[str, tuple[Any, str]]) -> str:
    symbols = expected.get("num_symbols", (None, ""))[0]
    if hparams.get("num_symbols") == PIPER_NUM_SYMBOLS and isinstance(symbols, int) and symbols < PIPER_NUM_SYMBOLS:
        # An older voxmill prepare wrote the phoneme map's size (166); the trainer always uses 256.
        return f"set num_symbols to {PIPER_NUM_SYMBOLS} in the config, as the trainer does (voxmill prepare writes it)"
    return "a resumed or fine-tuned run would load mismatched weights; use a matching checkpoint or fix the config"
