"""Runs every item in the calling thread: for debugging, profiling, and tiny inputs."""

from __future__ import annotations

import traceback
from collections import deque

from voxmill.engine.backends.base import Backend, Job, JobResult, run_job, setup_failed
from voxmill.engine.task import Task


class SerialBackend(Backend):
    """No parallelism and no per-item timeout (nothing could interrupt the item)."""

    name = "serial"

    def start(self, task: Task) -> None:
        self._task = task
        self._queue: deque[Job] = deque()
        self._setup_error: tuple[BaseException, str] | None = None
        try:
            task.setup(self.context(0))
        except Exception as exc:
            self._setup_error = (exc, traceback.format_exc())

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def poll(self, timeout: float | None) -> list[JobResult]:
        if not self._queue:
            return []
        job = self._queue.popleft()
        if self._setup_error is not None:
            return [setup_failed(job, *self._setup_error)]
        return [run_job(self._task, job)]

    def close(self, cancel: bool = False) -> None:
        self._queue.clear()
        if self._setup_error is None:
            self._task.teardown()
