"""``voxmill train-status RUN_DIR``: where a run stands, from its files alone (nothing is loaded but
checkpoint headers, memory-mapped).

A run folder is read while its trainer writes it (the best checkpoint is replaced, a metrics line is
half written) and may hold anything a user put there: what cannot be read is reported or skipped,
memory stays bounded whatever a file's size, and the answer is plain JSON (no NaN or Infinity).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.train.checkpoints import best_checkpoint, list_checkpoints, read_checkpoint

__all__ = ["run_status"]

# run.json and a voice's .onnx.json are a few kB; a metrics line is a few hundred bytes.
_MAX_JSON_BYTES = 1 << 20
_MAX_LINE_BYTES = 1 << 16


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity as None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _read_json(path: Path) -> Any:
    """The JSON value of a small regular file; ValueError or OSError when it is not one."""
    if not path.is_file():  # a FIFO or /dev/zero under that name would never end
        raise OSError(f"{path.name} is not a regular file")
    with path.open("rb") as fh:
        data = fh.read(_MAX_JSON_BYTES + 1)
    if len(data) > _MAX_JSON_BYTES:
        raise ValueError(f"larger than {_MAX_JSON_BYTES >> 20} MB")
    return json.loads(data.decode("utf-8", errors="replace"))


def _metrics(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not path.is_file():
        return rows
    try:
        with path.open("rb") as lines:
            while line := lines.readline(_MAX_LINE_BYTES + 1):
                if len(line) > _MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while (rest := lines.readline(_MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                        pass  # no epoch's line is this long: skipped in pieces, never held whole
                    continue
                try:
                    value = json.loads(line.decode("utf-8", errors="replace"))
                except ValueError:
                    continue  # a torn last line from a kill
                if isinstance(value, dict):
                    rows.append(_finite(value))
    except OSError:
        pass
    return rows


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _listed(folder: Path) -> tuple[Path | None, list[Path]]:
    for _ in range(3):
        try:
            return best_checkpoint(folder), list_checkpoints(folder)
        except FileNotFoundError:
            continue  # a checkpoint went between listing and stat (the trainer keeps the best one only)
    return None, []


def _checkpoints(folder: Path) -> list[dict[str, Any]]:
    out = []
    best_path, listed = _listed(folder)
    for path in listed:
        try:
            size = path.stat().st_size
        except OSError:
            continue  # replaced by the trainer since it was listed (a new best removes the old one)
        entry: dict[str, Any] = {"path": str(path), "bytes": size, "best": path == best_path}
        try:
            info = read_checkpoint(path)
            entry.update(epoch=info.epoch, step=info.step, resumable=info.optimizers > 0)
        except errors.DatasetError as exc:
            entry.update(error=str(exc))
        except (ValueError, TypeError, OverflowError) as exc:  # an epoch or step that is no number
            entry.update(error=f"{path}: not a Lightning checkpoint ({type(exc).__name__}: {str(exc)[:200]})")
        out.append(entry)
    return out


def _voices(folder: Path) -> list[dict[str, Any]]:
    voices = []
    for onnx in sorted(folder.glob("*.onnx")) if folder.is_dir() else []:
        if not onnx.is_file():
            continue
        made: dict[str, Any] = {}
        try:
            config = _read_json(onnx.with_name(onnx.name + ".json"))
            if isinstance(config, dict) and isinstance(config.get("voxmill"), dict):
                made = config["voxmill"]
        except (OSError, ValueError):
            pass  # a voice without its config: listed with what its file name says
        step = made.get("step")
        voices.append({"name": f"piper:{onnx.stem}", "path": str(onnx), "step": step if _number(step) else None})
    return voices


def run_status(run_dir: Path) -> dict[str, Any]:
    """Epochs, steps, latest and best losses, checkpoints and exported voices of a run folder."""
    record_path = run_dir / "run.json"
    if not record_path.exists():
        raise errors.DatasetError(f"{run_dir}: not a voxmill training run folder (no run.json)")
    try:
        record = _read_json(record_path)
    except (OSError, ValueError) as exc:
        raise errors.DatasetError(f"{record_path}: unreadable ({exc})") from None
    if not isinstance(record, dict):
        raise errors.DatasetError(f"{record_path}: not a voxmill run record (not a JSON object)")
    record = _finite(record)
    metrics = _metrics(run_dir / "metrics.jsonl")
    validated = [m for m in metrics if _number(m.get("val_mel"))]
    best = min(validated, key=lambda m: m["val_mel"]) if validated else None
    checkpoints = _checkpoints(run_dir / "checkpoints")
    latest = metrics[-1] if metrics else None
    epoch = latest.get("epoch") if latest else None
    steps = [c["step"] for c in checkpoints if _number(c.get("step"))]
    if not steps and latest and _number(latest.get("step")):
        steps = [latest["step"]]
    return {
        "run_dir": str(run_dir),
        "dataset": record.get("dataset"),
        "voice_name": record.get("voice_name"),
        "quality": record.get("quality"),
        "epochs": epoch + 1 if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 else 0,
        "step": max(steps, default=0),
        "latest": latest,
        "best": best,
        "checkpoints": checkpoints,
        "voices": _voices(run_dir / "voices"),
    }
