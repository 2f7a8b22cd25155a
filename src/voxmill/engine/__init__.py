"""The parallel engine: ``Pool(...).imap(task, items)`` yields one Outcome per item.

Imports only leaves (and, by design, the model manager) — never an application.
"""

from voxmill.engine.journal import Journal
from voxmill.engine.options import BACKENDS, RunOptions, check_number, parse_workers
from voxmill.engine.outcome import Drop, Dropped, Failed, Ok, Outcome
from voxmill.engine.pool import Pool
from voxmill.engine.sharing import SharedArray, share
from voxmill.engine.task import Task, WorkerContext
from voxmill.engine.threads import ThreadPlan, plan, session_options, usable_cores

__all__ = [
    "BACKENDS",
    "Drop",
    "Dropped",
    "Failed",
    "Journal",
    "Ok",
    "Outcome",
    "Pool",
    "RunOptions",
    "SharedArray",
    "Task",
    "ThreadPlan",
    "WorkerContext",
    "check_number",
    "parse_workers",
    "plan",
    "session_options",
    "share",
    "usable_cores",
]
