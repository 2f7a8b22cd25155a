"""One rich progress bar for a run: done/total, items/s, audio hours done and hours/s, failed count, ETA."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from voxmill.engine.outcome import Failed, Outcome

__all__ = ["RunProgress"]


def rates_text(done: int, audio_seconds: float, failed: int, elapsed: float) -> str:
    """``"812.0 items/s  1.21 h audio  0.402 h/s (1447x realtime)"``: speech corpora are sized in hours."""
    elapsed = max(1e-9, elapsed)
    text = f"{done / elapsed:,.1f} items/s"
    if audio_seconds:
        hours = audio_seconds / 3600
        text += f"  {hours:,.2f} h audio  {hours / elapsed:,.3f} h/s ({audio_seconds / elapsed:,.0f}x realtime)"
    if failed:
        text += f"  [red]{failed} failed[/red]"
    return text


class _RatesColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        audio = float(task.fields.get("audio", 0.0))
        failed = int(task.fields.get("failed", 0))
        return Text.from_markup(rates_text(int(task.completed), audio, failed, task.elapsed or 0.0))


class RunProgress:
    """Context manager; ``advance(outcome)`` per item. Invisible when ``enabled`` is False."""

    def __init__(self, description: str, total: int | None, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.done = 0
        self.failed = 0
        self.audio_seconds = 0.0
        self.started = time.monotonic()
        self._progress: Progress | None = None
        if self.enabled:
            self._progress = Progress(
                # The description names user files (converting NAME): plain text, never markup.
                TextColumn("{task.description}", style="bold", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                _RatesColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True, emoji=False),
                transient=False,
            )
            self._task_id = self._progress.add_task(description, total=total, audio=0.0, failed=0)

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, outcome: Outcome) -> None:
        self.done += 1
        if isinstance(outcome.result, Failed):
            self.failed += 1
        if outcome.audio_seconds:
            self.audio_seconds += outcome.audio_seconds
        if self._progress is not None:
            self._progress.update(self._task_id, advance=1, audio=self.audio_seconds, failed=self.failed)
