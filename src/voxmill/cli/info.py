"""``voxmill info FILE...``: format and levels per file; damaged files are reported and skipped."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from voxmill.audio.describe import FileReport, describe
from voxmill.audio.vad import SpeechDetector
from voxmill.cli.common import console, err_console, state
from voxmill.cli.models import manager_from_settings
from voxmill.errors import AudioError


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "-inf"
    return f"{value:.{digits}f}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


def info(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE...", help="Audio files (wav, flac, ogg, mp3, m4a, opus, webm, ...).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file, one per line.")] = False,
    no_vad: Annotated[bool, typer.Option("--no-vad", help="Skip the speech % (Silero VAD) column.")] = False,
) -> None:
    """Show format, codec, sample rate, channels, duration, peak, loudness, clipping, silence and speech.

    speech % is the time inside voice-activity (Silero VAD) segments, pauses between words included;
    silence % is the time below -50 dBFS outside them, so the two never add up to more than 100.
    Files are read in blocks: a recording of hours is measured in bounded memory. A damaged file, or
    one at a sample rate voxmill does not handle (4-768 kHz), prints one line 'FILE: reason' to
    stderr; the others are still reported. Exit code 1 if any file failed.
    """
    with contextlib.ExitStack() as stack:
        detector = None
        if not no_vad:
            # Silero leased once for every file, from a manager built from Settings like every command's;
            # closed with the command, so its model and keep-alive reaper do not outlive it.
            manager = manager_from_settings(state(ctx).settings)
            stack.callback(manager.close)
            detector = stack.enter_context(manager.lease(manager.registry.resolve("silero-vad"), device="cpu"))
        failed = _report(files, as_json, detector)
    if failed:
        raise typer.Exit(1)


def _report(files: list[Path], as_json: bool, detector: SpeechDetector | None) -> int:
    """Print each file's report (or its one-line error); returns how many failed."""
    reports: list[FileReport] = []
    failed = 0
    for path in files:
        try:
            report = describe(path, vad=detector is not None, detector=detector)
        except (AudioError, MemoryError, OSError, ValueError, RuntimeError) as exc:
            # One file's problem is that file's line: the files after it are still measured.
            failed += 1
            reason = getattr(exc, "reason", None) or _reason(exc)
            err_console.print(f"{path}: {reason}", markup=False, highlight=False)
            if as_json:
                print(json.dumps({"path": str(path), "error": reason}), flush=True)
            continue
        if as_json:
            print(json.dumps(report.to_dict()), flush=True)
        reports.append(report)
    if reports and not as_json:
        console.print(_table(reports))
    return failed


def _reason(exc: BaseException) -> str:
    """A one-line reason for an error no audio check foresaw (the decoder's or the meter's own)."""
    text = " ".join(str(exc).split()).rstrip(".")
    return f"cannot measure: {type(exc).__name__}" + (f": {text}" if text else "")


def _table(reports: list[FileReport]) -> Table:
    table = Table(box=None, header_style="bold")
    for name, justify in [
        ("file", "left"),
        ("format", "left"),
        ("codec", "left"),
        ("rate", "right"),
        ("ch", "right"),
        ("duration", "right"),
        ("peak dBFS", "right"),
        ("LUFS", "right"),
        ("clip %", "right"),
        ("silence %", "right"),
        ("speech %", "right"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in reports:
        table.add_row(
            r.path,
            r.format,
            r.codec,
            str(r.sample_rate),
            str(r.channels),
            _duration(r.duration),
            _num(r.peak_dbfs),
            _num(r.lufs),
            _num(r.clipping_pct, 2),
            _num(r.silence_pct),
            _num(r.speech_pct),
        )
    return table
