"""How many workers, and how many threads each: cgroup- and affinity-aware core counting.

Oversubscription is the classic failure of naive pools: two workers each running onnxruntime or
OpenBLAS with all cores spin against each other. Each worker gets ``cores // workers`` threads, set
in its environment before it imports anything heavy, and spinning off.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from voxmill.engine.options import parse_count, parse_workers

# One helper for onnxruntime sessions, shared with the model loaders (engine may import models).
from voxmill.models.devices import session_options

__all__ = ["WORKERS_PER_CORE", "ThreadPlan", "plan", "session_options", "thread_env", "usable_cores"]

# Variables the common native thread pools read at import/initialisation time.
_THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by a cgroup v2 (cpu.max) or v1 (cfs quota) limit, or None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 else None
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """Cores this process may really use: affinity mask, then any cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, math.floor(limit)))
    return max(1, cores)


@dataclass(frozen=True)
class ThreadPlan:
    """How a run is spread: ``workers`` workers of ``backend``, each with ``threads_per_worker`` native
    threads. A run reports the plan it used (``Pool.plan``, an application's result)."""

    workers: int
    threads_per_worker: int
    backend: str = "process"

    def describe(self) -> str:
        """``"2 process workers x 1 thread"``: the line a command prints on stderr."""
        workers = "worker" if self.workers == 1 else "workers"
        threads = "thread" if self.threads_per_worker == 1 else "threads"
        return f"{self.workers} {self.backend} {workers} x {self.threads_per_worker} {threads}"


# Workers on this machine past a few per usable core only queue for the CPU, and each worker process
# costs memory (its interpreter, numpy, onnxruntime: ~100 MB before any model): `--workers 10000` once
# meant 510 processes and 10 GB for 32 items. 4 per core still leaves room for tasks that wait on I/O.
WORKERS_PER_CORE = 4


def plan(
    workers: int | str = "auto",
    threads_per_worker: int | str = "auto",
    items: int | None = None,
    local: bool = True,
    backend: str = "process",
) -> ThreadPlan:
    """Workers = usable cores, never more than ``items`` nor, for workers on this machine (``local``),
    ``WORKERS_PER_CORE`` per core; threads = max(1, cores // workers), at most the cores when local.
    The plan names ``backend``, for what a run reports.

    Bad values raise :class:`~voxmill.errors.ConfigError` (see :mod:`voxmill.engine.options`).
    """
    cores = usable_cores()
    asked = parse_workers(workers)
    count = cores if asked == "auto" else int(asked)
    if local:
        count = min(count, WORKERS_PER_CORE * cores)
    if items is not None:
        count = max(1, min(count, items))
    asked_threads = parse_count(threads_per_worker, "--threads-per-worker")
    if asked_threads == "auto":
        threads = max(1, cores // count)
    else:
        threads = min(int(asked_threads), cores) if local else int(asked_threads)
    return ThreadPlan(count, threads, backend)


def thread_env(threads: int) -> dict[str, str]:
    """Environment for a worker process: every native pool capped at ``threads``, waiting passively."""
    env = dict.fromkeys(_THREAD_VARS, str(threads))
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # OpenMP threads sleep instead of spinning between items
    return env
