"""The model manager's accounting: what each loaded model holds, the budgets, and who is evicted first.

A load reserves its estimate (file size x a factor per kind, or the largest size measured before);
once loaded, a larger measured size (process RSS delta after loading and after first use, NVML delta
on a GPU) raises the reservation. Measurements only ever raise it: an RSS delta undercounts when a
model reuses heap an evicted one left behind. The sum of reservations never exceeds the budget.

Eviction is cost-aware: among idle models, the one that is cheapest to load again per byte it frees
goes first, then the least recently used. Nothing here locks or loads: the manager holds its lock
around every call, and does the loading and the events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from voxmill import errors
from voxmill.models.devices import DeviceChoice
from voxmill.models.registry import ModelSpec
from voxmill.models.sizing import remember

__all__ = ["Budget", "Entry", "ModelStatus"]

MIB = 2**20


@dataclass
class ModelStatus:
    name: str
    kind: str
    device: str
    estimated_bytes: int
    measured_bytes: int | None
    refs: int
    pinned: bool
    last_used: float
    expires_in: float | None
    load_seconds: float
    fallback_reason: str | None
    note: str | None = None
    """How the model runs, when it matters (a voice that could not be split runs as one session)."""
    loading: bool = False
    """Reserved and being loaded (its bytes are the estimate held for it), not yet usable."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Entry:
    """One model the manager holds (or is loading): its device, size accounting, leases and expiry."""

    def __init__(self, spec: ModelSpec, choice: DeviceChoice, estimate: int, keep_alive: float) -> None:
        self.spec = spec
        self.device = choice.device
        self.fallback_reason = choice.fallback_reason
        self.note: str | None = None
        self.estimate = estimate
        self.measured: int | None = None
        self.model: Any = None
        self.refs = 0
        self.pinned = False
        self.keep_alive = keep_alive
        self.last_used = time.monotonic()
        self.load_seconds = 0.0
        self.rss_before = 0  # process RSS just before loading, to re-measure after first use
        self.load_serial = 0  # the manager's load counter when this one loaded
        self.remeasured = False
        self.loaded = threading.Event()
        self.error: BaseException | None = None
        self.identity = ""  # which file this is (ModelSpec.identity)

    @property
    def gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def bytes(self) -> int:
        # A measurement can raise the accounted size, never lower it: an RSS delta undercounts when
        # the model reuses heap that an evicted one left behind.
        return max(self.estimate, self.measured or 0)

    @property
    def idle(self) -> bool:
        return self.refs == 0 and not self.pinned and self.loaded.is_set() and self.error is None

    def measure(self, measured: int) -> None:
        """Account the size measured just after loading (RSS or NVML delta), when it is plausible:
        a concurrent load elsewhere can inflate or hide the delta."""
        spec = self.spec
        if spec.kind != "whisper":
            # ONNX weights load as stored: resident size is never below the file's.
            measured = max(measured, spec.size_bytes)
        if measured > spec.size_bytes // 4:
            self.measured = remember(spec.name, self.device, measured)

    def grew_to(self, size: int) -> bool:
        """Account a size measured after first use (arenas, caches); True if it raised the account."""
        if size <= self.bytes:
            return False
        self.measured = remember(self.spec.name, self.device, size)
        return True

    def status(self, now: float) -> ModelStatus:
        """This model as ``manager.status()`` reports it; ``now`` is ``time.monotonic()``."""
        expires = max(0.0, self.last_used + self.keep_alive - now) if self.idle else None
        return ModelStatus(
            name=self.spec.name,
            kind=self.spec.kind,
            device=self.device,
            estimated_bytes=self.estimate,
            measured_bytes=self.measured,
            refs=self.refs,
            pinned=self.pinned,
            last_used=time.time() - (now - self.last_used),
            expires_in=expires,
            load_seconds=self.load_seconds,
            fallback_reason=self.fallback_reason,
            note=self.note,
            loading=not self.loaded.is_set(),
        )


class Budget:
    """Byte budgets for RAM and GPU memory (None: no limit) and an optional cap on models loaded."""

    def __init__(self, ram_bytes: int, gpu_bytes: int | None, max_loaded: int | None) -> None:
        self.ram_bytes = ram_bytes
        self.gpu_bytes = gpu_bytes
        self.max_loaded = max_loaded
        self.entries: dict[str, Entry] = {}

    def limit(self, gpu: bool) -> int | None:
        return self.gpu_bytes if gpu else self.ram_bytes

    def used(self, gpu: bool) -> int:
        return sum(e.bytes for e in self.entries.values() if e.gpu == gpu)

    def over(self, gpu: bool) -> bool:
        limit = self.limit(gpu)
        return limit is not None and self.used(gpu) > limit

    def evict_for(self, need: int, gpu: bool, protect: str, drop: Callable[[Entry], None], adding: int = 1) -> bool:
        """``drop`` idle models until ``need`` more bytes (and ``adding`` more models) fit.

        False if even evicting every idle model is not enough.
        """
        limit = self.limit(gpu)

        def fits() -> bool:
            return limit is None or self.used(gpu) + need <= limit

        def count_ok() -> bool:
            return self.max_loaded is None or len(self.entries) + adding <= self.max_loaded

        idle = [e for name, e in self.entries.items() if e.idle and name != protect]
        # Cheapest to reload per byte freed first; among equals, the least recently used.
        idle.sort(key=lambda e: (e.load_seconds / max(1, e.bytes), e.last_used))
        for entry in idle:
            if fits() and count_ok():
                break
            if entry.gpu != gpu and count_ok():
                continue  # freeing the other kind of memory does not help
            drop(entry)
        return fits() and count_ok()

    def too_large(self, spec: ModelSpec, size: int, gpu: bool, in_use: bool = False) -> errors.ModelTooLarge:
        """The error for a model that does not fit: alone (bigger than the budget) or beside models in use."""
        where = "GPU" if gpu else "RAM"
        limit = self.limit(gpu) or 0
        if in_use:
            busy = ", ".join(f"{n} ({e.bytes / MIB:.0f} MiB)" for n, e in self.entries.items() if not e.idle)
            error = errors.ModelTooLarge(
                f"{spec.name} needs ~{size / MIB:.0f} MiB but the {where} budget of {limit / MIB:.0f} MiB "
                f"is held by models in use: {busy or 'none'}"
            )
            error.in_use = True
            return error
        return errors.ModelTooLarge(
            f"{spec.name} needs ~{size / MIB:.0f} MiB, more than the whole {where} budget of {limit / MIB:.0f} MiB"
        )
