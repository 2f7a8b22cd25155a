"""The trainer's events as a rich progress bar per epoch (steps, losses, steps/s, ETA), or one line per
epoch when the output is not a terminal or progress is off."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["TrainProgress", "losses_text"]

# What writing to an output that went away raises: OSError (EPIPE, EIO of a closed terminal), or rich's
# SystemExit(1), which is how its console answers a broken pipe.
_GONE = (OSError, SystemExit)


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def losses_text(event: dict[str, Any]) -> str:
    parts = [f"loss_g {_fmt(event.get('loss_g'), 2)}", f"loss_d {_fmt(event.get('loss_d'), 3)}"]
    if event.get("val_mel") is not None:
        parts.append(f"val_mel {_fmt(event.get('val_mel'), 4)}")
    return "  ".join(parts)


class TrainProgress:
    """Feed it every event (``show``); a context manager around the live display."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.console = Console(stderr=True, markup=False, emoji=False, highlight=False)
        self.live = sys.stderr.isatty() if enabled is None else enabled
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self.task: Any = None
        self.val_mel: float | None = None
        self.quiet = enabled is False
        self.stepped = False

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.progress.__exit__(None, None, None)
        except _GONE:
            self._lost()

    def say(self, text: str) -> None:
        if not self.quiet:
            try:
                self.console.print(text)
            except _GONE:
                self._lost()

    def _lost(self) -> None:
        """The terminal or pipe went away (closed, ``| head``): training goes on without a display."""
        self.quiet, self.live = True, False
        with contextlib.suppress(Exception, SystemExit):  # stopping the display writes to the dead output too
            self.progress.stop()
        self.progress.disable = True

    def show(self, event: dict[str, Any]) -> None:
        if self.quiet and not self.live:
            return
        try:
            self._show(event)
        except _GONE:
            self._lost()

    def _show(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "start":
            where = f"step {event.get('step')}, epoch {event.get('epoch')}" if event.get("step") else "the start"
            self.say(
                f"training on {event.get('device')} from {where}: {event.get('batches')} steps per epoch, "
                f"generator {int(event.get('parameters') or 0) / 1e6:.1f} M parameters"
            )
        elif kind == "epoch":
            if self.task is not None:
                self.progress.remove_task(self.task)
            self.task = self.progress.add_task(
                f"epoch {event.get('epoch')}", total=event.get("batches"), losses="", rate=""
            )
        elif kind == "batch":
            if not self.stepped:
                self.stepped = True
                self.say(f"first step done: step {event.get('step')}  {losses_text(event)}")
            if self.task is not None:
                task = self.progress.tasks[-1]
                elapsed, done = task.elapsed or 0.0, task.completed + 1
                rate = f"{done / elapsed:.2f} steps/s" if elapsed > 0 else ""
                self.progress.update(self.task, completed=done, losses=losses_text(event), rate=rate)
        elif kind == "epoch_end":
            per_s = event.get("steps_per_s")
            self.say(
                f"epoch {event.get('epoch')}: step {event.get('step')}  {losses_text(event)}  {_fmt(per_s, 3)} steps/s"
            )
        elif kind == "warm_start":
            fresh = ", ".join(event.get("fresh") or []) or "none"
            self.say(f"fine-tuning: {event.get('copied')} of {event.get('total')} weights from the base (new: {fresh})")
        elif kind == "saved":
            self.say(f"saved {event.get('path')} (step {event.get('step')})")
