"""Runs every item in the calling thread: for debugging, profiling, and tiny inputs."""

from __future__ import annotations

from collections import deque

from voxmill.engine.backends.base import Backend, Job, JobResult, TaskHost
from voxmill.engine.task import Task


class SerialBackend(Backend):
    """No parallelism and no per-item timeout (nothing could interrupt the item)."""

    name = "serial"
    shares_models = True
    inline_arrays = True  # the caller's own thread: nothing to carry (see ThreadBackend)

    def start(self, task: Task) -> None:
        self._queue: deque[Job] = deque()
        # The caller's thread: a KeyboardInterrupt in an item may be the user's Ctrl-C, and ends the run.
        self._host = TaskHost(lambda: task, self.context(0), interruptible=True)

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def poll(self, timeout: float | None) -> list[JobResult]:
        if not self._queue:
            return []
        return [self._host.run(self._queue.popleft())]

    def close(self, cancel: bool = False) -> None:
        if not hasattr(self, "_host"):
            return
        self._queue.clear()
        self._host.teardown()
        self.close_models()
