"""Background memory sampling: system RAM, this process's RSS, and each GPU (NVML), with alerts.

A ring buffer keeps ``history_minutes`` of samples. Crossing ``ram_alert`` (fraction of system RAM in
use) calls the alert callbacks, and with a manager attached, first asks it to unload idle models.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import psutil

from voxmill.models.devices import GpuInfo, gpus

if TYPE_CHECKING:
    from voxmill.models.manager import ModelManager

__all__ = ["MemoryMonitor", "Sample"]


@dataclass(frozen=True)
class Sample:
    time: float
    ram_used_fraction: float
    ram_available_bytes: int
    process_rss_bytes: int
    gpus: list[GpuInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MemoryMonitor:
    """``start()`` a daemon sampler every ``interval`` s; ``history(minutes)``; ``on_alert(callback)``."""

    def __init__(
        self,
        interval: float = 1.0,
        history_minutes: float = 30.0,
        ram_alert: float = 0.9,
        gpu_alert: float = 0.95,
        manager: ModelManager | None = None,
    ) -> None:
        self.interval = interval
        self.ram_alert = ram_alert
        self.gpu_alert = gpu_alert
        self.manager = manager
        self._samples: deque[Sample] = deque(maxlen=max(1, int(history_minutes * 60 / interval)))
        self._callbacks: list[Callable[[str, Sample], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()
        self._nvml_ok = True

    def on_alert(self, callback: Callable[[str, Sample], None]) -> None:
        self._callbacks.append(callback)

    def sample(self) -> Sample:
        """Take one sample now (also what the background thread does), and check thresholds."""
        memory = psutil.virtual_memory()
        found: list[GpuInfo] = []
        if self._nvml_ok:
            found, why = gpus()
            # No NVML here: stop asking every second, it will not appear mid-run.
            self._nvml_ok = bool(found) or why is None
        sample = Sample(
            time.time(), memory.percent / 100, int(memory.available), int(self._process.memory_info().rss), found
        )
        self._samples.append(sample)
        self._check(sample)
        return sample

    def _check(self, sample: Sample) -> None:
        alerts = []
        if sample.ram_used_fraction >= self.ram_alert:
            alerts.append(f"system RAM {sample.ram_used_fraction:.0%} used (alert at {self.ram_alert:.0%})")
            if self.manager is not None:
                self.manager.unload_all()
        for gpu in sample.gpus:
            if gpu.total_bytes and gpu.used_bytes / gpu.total_bytes >= self.gpu_alert:
                alerts.append(f"GPU {gpu.index} memory {gpu.used_bytes / gpu.total_bytes:.0%} used")
        for message in alerts:
            for callback in self._callbacks:
                callback(message, sample)
            if self.manager is not None:
                self.manager.alert(message)

    def history(self, minutes: float | None = None) -> list[Sample]:
        if minutes is None:
            return list(self._samples)
        since = time.time() - minutes * 60
        return [s for s in self._samples if s.time >= since]

    def start(self) -> MemoryMonitor:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="voxmill-memory-monitor", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * self.interval + 1)

    def __enter__(self) -> MemoryMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
