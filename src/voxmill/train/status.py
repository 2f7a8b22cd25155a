"""``voxmill train-status RUN_DIR``: where a run stands, from its files alone (nothing is loaded but
checkpoint headers, memory-mapped)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.train.checkpoints import best_checkpoint, list_checkpoints, read_checkpoint

__all__ = ["run_status"]


def _metrics(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    value = json.loads(line)
                except ValueError:
                    continue  # a torn last line from a kill
                if isinstance(value, dict):
                    rows.append(value)
    except OSError:
        pass
    return rows


def run_status(run_dir: Path) -> dict[str, Any]:
    """Epochs, steps, latest and best losses, checkpoints and exported voices of a run folder."""
    if not (run_dir / "run.json").is_file():
        raise errors.DatasetError(f"{run_dir}: not a voxmill training run folder (no run.json)")
    try:
        record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise errors.DatasetError(f"{run_dir / 'run.json'}: unreadable ({exc})") from None
    metrics = _metrics(run_dir / "metrics.jsonl")
    validated = [m for m in metrics if isinstance(m.get("val_mel"), int | float)]
    best = min(validated, key=lambda m: m["val_mel"]) if validated else None
    checkpoints = []
    best_path = best_checkpoint(run_dir / "checkpoints")
    for path in list_checkpoints(run_dir / "checkpoints"):
        entry: dict[str, Any] = {"path": str(path), "bytes": path.stat().st_size, "best": path == best_path}
        try:
            info = read_checkpoint(path)
            entry.update(epoch=info.epoch, step=info.step, resumable=info.optimizers > 0)
        except errors.DatasetError as exc:
            entry.update(error=str(exc))
        checkpoints.append(entry)
    voices = []
    for onnx in sorted((run_dir / "voices").glob("*.onnx")) if (run_dir / "voices").is_dir() else []:
        info_json: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            info_json = json.loads(onnx.with_name(onnx.name + ".json").read_text(encoding="utf-8"))
        made: dict[str, Any] = {}
        if isinstance(info_json, dict) and isinstance(info_json.get("voxmill"), dict):
            made = info_json["voxmill"]
        voices.append({"name": f"piper:{onnx.stem}", "path": str(onnx), "step": made.get("step")})
    latest = metrics[-1] if metrics else None
    return {
        "run_dir": str(run_dir),
        "dataset": record.get("dataset"),
        "voice_name": record.get("voice_name"),
        "quality": record.get("quality"),
        "epochs": (latest["epoch"] + 1) if latest and isinstance(latest.get("epoch"), int) else 0,
        "step": max((c.get("step", 0) for c in checkpoints), default=latest.get("step", 0) if latest else 0),
        "latest": latest,
        "best": best,
        "checkpoints": checkpoints,
        "voices": voices,
    }
