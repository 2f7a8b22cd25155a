"""Engine backends: where items run. All share the interface in :mod:`.base`."""

from voxmill.engine.backends.base import Backend, Job, JobResult, create_backend

__all__ = ["Backend", "Job", "JobResult", "create_backend"]
