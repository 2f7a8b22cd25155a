"""Background memory sampling: system RAM, this process's RSS, and each GPU (NVML), with cleanup and alerts.

A ring buffer keeps ``history_minutes`` of samples. Two thresholds per kind of memory, both shares of
it in use: at ``ram_cleanup`` / ``gpu_cleanup`` the attached manager frees its idle, unpinned models
(on the CPU, or on that GPU) at every sample that is over; at ``ram_alert`` / ``gpu_alert`` the alert
callbacks run once per crossing (not at every sample while it stays over: an alert log of 200 entries
would hold nothing else after seven minutes). Thresholds are plain attributes: change them at run time.
"""

from __future__ import annotations

import logging
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

__all__ = ["MemoryMonitor", "Sample", "gpu_share"]

log = logging.getLogger("voxmill.models")


@dataclass(frozen=True)
class Sample:
    time: float
    ram_used_fraction: float
    ram_available_bytes: int
    process_rss_bytes: int
    gpus: list[GpuInfo] = field(default_factory=list)
    ram_total_bytes: int = 0
    ram_used_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gpu_share(gpu: GpuInfo) -> float:
    """Share of a GPU's memory in use (0 when NVML reports no total)."""
    return gpu.used_bytes / gpu.total_bytes if gpu.total_bytes else 0.0


class MemoryMonitor:
    """``start()`` a daemon sampler every ``interval`` s; ``history(minutes)``; ``on_alert(callback)``.

    ``ram_cleanup`` / ``gpu_cleanup`` default to the alert thresholds (None: cleanup where the alert is).
    """

    def __init__(
        self,
        interval: float = 1.0,
        history_minutes: float = 30.0,
        ram_alert: float = 0.9,
        gpu_alert: float = 0.95,
        manager: ModelManager | None = None,
        ram_cleanup: float | None = None,
        gpu_cleanup: float | None = None,
    ) -> None:
        if not (isinstance(interval, (int, float)) and 0 < interval <= 24 * 3600):  # NaN fails too
            raise ValueError(f"monitor interval: expected above 0 and at most a day in seconds, got {interval!r}")
        self.interval = interval
        self.ram_alert = ram_alert
        self.gpu_alert = gpu_alert
        self.ram_cleanup = ram_alert if ram_cleanup is None else ram_cleanup
        self.gpu_cleanup = gpu_alert if gpu_cleanup is None else gpu_cleanup
        self.manager = manager
        self._samples: deque[Sample] = deque(maxlen=max(1, int(history_minutes * 60 / interval)))
        self._callbacks: list[Callable[[str, Sample], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process = psutil.Process()
        self._nvml_ok = True
        self._alerting: set[str] = set()  # which memories are over their alert threshold now
        self._lock = threading.Lock()  # the sampler thread and a scrape may sample at once

    def on_alert(self, callback: Callable[[str, Sample], None]) -> None:
        self._callbacks.append(callback)

    def sample(self) -> Sample:
        """Take one sample now (also what the background thread does), and act on the thresholds."""
        memory = psutil.virtual_memory()
        found: list[GpuInfo] = []
        if self._nvml_ok:
            found, why = gpus()
            # No NVML here: stop asking every second, it will not appear mid-run.
            self._nvml_ok = bool(found) or why is None
        sample = Sample(
            time.time(),
            memory.percent / 100,
            int(memory.available),
            int(self._process.memory_info().rss),
            found,
            int(memory.total),
            int(memory.total - memory.available),
        )
        with self._lock:
            self._samples.append(sample)
        self.check(sample)
        return sample

    def check(self, sample: Sample) -> None:
        """Act on ``sample``: free idle models where memory is over a cleanup threshold, then alert where
        it newly crossed an alert threshold (``sample()`` calls this)."""
        with self._lock:
            self._cleanup(sample)
            self._check(sample)

    def latest(self, max_age: float | None = None) -> Sample:
        """The last sample if it is at most ``max_age`` seconds old (default: two intervals), else a new one."""
        limit = 2 * self.interval if max_age is None else max_age
        with self._lock:
            last = self._samples[-1] if self._samples else None
        if last is not None and time.time() - last.time <= limit:
            return last
        return self.sample()

    def _cleanup(self, sample: Sample) -> None:
        """Free idle, unpinned models where memory is over its cleanup threshold; say what was freed."""
        if self.manager is None:
            return
        over = []
        if sample.ram_used_fraction >= self.ram_cleanup:
            over.append(("cpu", f"system RAM {sample.ram_used_fraction:.0%} used", self.ram_cleanup))
        over += [
            (f"cuda:{g.index}", f"GPU {g.index} memory {gpu_share(g):.0%} used", self.gpu_cleanup)
            for g in sample.gpus
            if g.total_bytes and gpu_share(g) >= self.gpu_cleanup
        ]
        for device, what, threshold in over:
            freed = self.manager.free_idle(device)
            if freed:
                self.manager.alert(f"{what} (cleanup at {threshold:.0%}): freed {', '.join(freed)}",
                                   kind="cleanup", device=device, freed=freed)  # fmt: skip

    def _check(self, sample: Sample) -> None:
        over: dict[str, str] = {}
        if sample.ram_used_fraction >= self.ram_alert:
            over["ram"] = f"system RAM {sample.ram_used_fraction:.0%} used (alert at {self.ram_alert:.0%})"
        for gpu in sample.gpus:
            share = gpu_share(gpu)
            if gpu.total_bytes and share >= self.gpu_alert:
                over[f"gpu{gpu.index}"] = f"GPU {gpu.index} memory {share:.0%} used (alert at {self.gpu_alert:.0%})"
        new = [message for key, message in over.items() if key not in self._alerting]
        self._alerting = set(over)
        for message in new:
            for callback in self._callbacks:
                callback(message, sample)
            if self.manager is not None:
                self.manager.alert(message, kind="alert")

    def history(self, minutes: float | None = None) -> list[Sample]:
        with self._lock:
            samples = list(self._samples)
        if minutes is None:
            return samples
        since = time.time() - minutes * 60
        return [s for s in samples if s.time >= since]

    def start(self) -> MemoryMonitor:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="voxmill-memory-monitor", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # one failed sample (psutil, NVML, a listener) must not end sampling
                log.warning("memory sample failed: %s", exc)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * self.interval + 1)

    def __enter__(self) -> MemoryMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
