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

# One helper for onnxruntime sessions, shared with the model loaders (engine may import models).
from voxmill.models.devices import session_options

__all__ = ["ThreadPlan", "plan", "session_options", "thread_env", "usable_cores"]

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
    workers: int
    threads_per_worker: int


def plan(workers: int | str = "auto", threads_per_worker: int | str = "auto", items: int | None = None) -> ThreadPlan:
    """Workers = usable cores (never more than ``items``); threads = max(1, cores // workers)."""
    cores = usable_cores()
    if workers == "auto":
        count = cores
    elif isinstance(workers, int) and workers >= 1:
        count = workers
    else:
        raise ValueError(f"workers must be a positive integer or 'auto', got {workers!r}")
    if items is not None:
        count = max(1, min(count, items))
    if threads_per_worker == "auto":
        threads = max(1, cores // count)
    elif isinstance(threads_per_worker, int) and threads_per_worker >= 1:
        threads = threads_per_worker
    else:
        raise ValueError(f"threads_per_worker must be a positive integer or 'auto', got {threads_per_worker!r}")
    return ThreadPlan(count, threads)


def thread_env(threads: int) -> dict[str, str]:
    """Environment for a worker process: every native pool capped at ``threads``, waiting passively."""
    env = dict.fromkeys(_THREAD_VARS, str(threads))
    env["OMP_WAIT_POLICY"] = "PASSIVE"  # OpenMP threads sleep instead of spinning between items
    return env
