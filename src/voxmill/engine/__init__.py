"""The parallel engine: ``Pool(...).imap(task, items)`` yields one Outcome per item.

Imports only leaves (and, by design, the model manager) — never an application. What the dataset
applications share (clip filters, dataset writers, the row report) loads on first access: they need
the audio stack, which a bare engine worker should not pay for.
"""

from typing import TYPE_CHECKING

import lazy_loader

from voxmill.engine.journal import Journal
from voxmill.engine.options import BACKENDS, RunOptions, check_number, parse_workers
from voxmill.engine.outcome import Drop, Dropped, Failed, Ok, Outcome
from voxmill.engine.pool import Pool
from voxmill.engine.sharing import SharedArray, share
from voxmill.engine.task import Task, WorkerContext
from voxmill.engine.threads import ThreadPlan, plan, session_options, usable_cores

if TYPE_CHECKING:
    from voxmill.engine.datasets import place_wavs, write_dataset
    from voxmill.engine.filters import ClipFilters, DropCode
    from voxmill.engine.report import ReasonGroup, RowReport

_LAZY = {
    "datasets": ["place_wavs", "write_dataset"],
    "filters": ["ClipFilters", "DropCode"],
    "report": ["ReasonGroup", "RowReport"],
}
__getattr__, _lazy_dir, _ = lazy_loader.attach(__name__, submod_attrs=_LAZY)

__all__ = [
    "BACKENDS",
    "ClipFilters",
    "Drop",
    "DropCode",
    "Dropped",
    "Failed",
    "Journal",
    "Ok",
    "Outcome",
    "Pool",
    "ReasonGroup",
    "RowReport",
    "RunOptions",
    "SharedArray",
    "Task",
    "ThreadPlan",
    "WorkerContext",
    "check_number",
    "parse_workers",
    "place_wavs",
    "plan",
    "session_options",
    "share",
    "usable_cores",
    "write_dataset",
]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
