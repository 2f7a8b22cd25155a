"""The one place models are loaded: refcounted leases under a byte budget, keep-alive, eviction.

Modelled on Ollama's scheduler (estimate before loading, refcounts, keep-alive, evict then retry),
with a budget on RAM and on each GPU, and cost-aware eviction: among idle models, the one that is
cheapest to load again per byte it frees goes first, then the least recently used.

Accounting: a load reserves its estimate (file size x a factor per kind, or the largest size
measured before); once loaded, a larger measured size (process RSS delta after loading and after
first use, NVML delta on a GPU) raises the reservation. Measurements only ever raise it: an RSS delta
undercounts when a model reuses heap an evicted one left behind. The sum of reservations never
exceeds the budget: a load that cannot fit after evicting every idle model raises ModelTooLarge; one
that turns out bigger than estimated evicts more, or is unloaded again.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from voxmill import errors
from voxmill.models.devices import DeviceChoice, choose_device, gpus
from voxmill.models.loaders import load_model
from voxmill.models.registry import ModelSpec, Registry
from voxmill.models.sizing import estimate, remember, rss, trim_heap

__all__ = ["ModelManager", "ModelStatus"]

EVENTS = ("load", "unload", "evict", "alert")


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Entry:
    def __init__(self, spec: ModelSpec, choice: DeviceChoice, estimate: int, keep_alive: float) -> None:
        self.spec = spec
        self.device = choice.device
        self.fallback_reason = choice.fallback_reason
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

    @property
    def bytes(self) -> int:
        # A measurement can raise the accounted size, never lower it: an RSS delta undercounts when
        # the model reuses heap that an evicted one left behind.
        return max(self.estimate, self.measured or 0)

    @property
    def idle(self) -> bool:
        return self.refs == 0 and not self.pinned and self.loaded.is_set() and self.error is None


class ModelManager:
    """Loads models on demand and holds them under ``budget_bytes`` (RAM) and ``gpu_budget_bytes``.

    ``with manager.lease("piper:en_US-joe-medium") as voice:`` holds a reference; concurrent leases
    share one instance, and a leased model is never evicted. ``keep_alive`` seconds after its last
    lease ends an idle model is unloaded (per-lease overrides are clamped to ``keep_alive_range``).
    """

    def __init__(
        self,
        budget_bytes: int | None = None,
        gpu_budget_bytes: int | None = None,
        keep_alive: float = 300.0,
        max_loaded: int | None = None,
        registry: Registry | None = None,
        device: str = "auto",
        threads: int = 1,
        keep_alive_range: tuple[float, float] = (0.0, 24 * 3600.0),
        retry_on_cpu: bool = True,
        profiles: dict[str, list[str]] | None = None,
    ) -> None:
        if budget_bytes is None:
            # No budget given: most of what is free now, leaving room for the work itself.
            budget_bytes = int(psutil.virtual_memory().available * 0.7)
        self.budget_bytes = budget_bytes
        self.gpu_budget_bytes = gpu_budget_bytes
        self.keep_alive = keep_alive
        self.keep_alive_range = keep_alive_range
        self.max_loaded = max_loaded
        self.registry = registry or Registry()
        self.device = device
        self.threads = threads
        self.retry_on_cpu = retry_on_cpu
        self.profiles = dict(profiles or {})
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._listeners: dict[str, list[Callable[[str, dict[str, Any]], None]]] = {e: [] for e in EVENTS}
        self._reaper: threading.Thread | None = None
        self._closed = False
        self._loads = 0  # counts loads, so a later RSS delta is only trusted if nothing else loaded

    # ---- events ------------------------------------------------------------------------------------

    def on(self, event: str, callback: Callable[[str, dict[str, Any]], None]) -> None:
        """Call ``callback(event, info)`` on load, unload, evict or alert."""
        if event not in self._listeners:
            raise ValueError(f"unknown event {event!r}; use one of {', '.join(EVENTS)}")
        self._listeners[event].append(callback)

    def _emit(self, event: str, **info: Any) -> None:
        for callback in list(self._listeners[event]):
            with contextlib.suppress(Exception):  # a listener's bug must not break loading
                callback(event, info)

    # ---- accounting ---------------------------------------------------------------------------------

    def _used(self, gpu: bool) -> int:
        return sum(e.bytes for e in self._entries.values() if e.device.startswith("cuda") == gpu)

    def _budget(self, gpu: bool) -> int | None:
        return self.gpu_budget_bytes if gpu else self.budget_bytes

    def _evict_for(self, need: int, gpu: bool, protect: str, adding: int = 1) -> bool:
        """Evict idle models until ``need`` more bytes (and ``adding`` more models) fit.

        False if even evicting every idle model is not enough.
        """
        budget = self._budget(gpu)

        def fits() -> bool:
            return budget is None or self._used(gpu) + need <= budget

        def count_ok() -> bool:
            return self.max_loaded is None or len(self._entries) + adding <= self.max_loaded

        idle = [e for name, e in self._entries.items() if e.idle and name != protect]
        # Cheapest to reload per byte freed first; among equals, the least recently used.
        idle.sort(key=lambda e: (e.load_seconds / max(1, e.bytes), e.last_used))
        for entry in idle:
            if fits() and count_ok():
                break
            if entry.device.startswith("cuda") != gpu and count_ok():
                continue  # freeing the other kind of memory does not help
            self._drop(entry, "evict")
        return fits() and count_ok()

    def _drop(self, entry: _Entry, event: str) -> None:
        name = entry.spec.name
        if self._entries.get(name) is entry:
            del self._entries[name]
        entry.model = None
        trim_heap()
        self._emit(event, name=name, device=entry.device, bytes=entry.bytes)
        self._changed.notify_all()

    # ---- leases -------------------------------------------------------------------------------------

    @contextmanager
    def lease(self, name: str, device: str | None = None, keep_alive: float | None = None) -> Iterator[Any]:
        """Hold ``name`` loaded for the ``with`` block; yields the model object."""
        entry = self._acquire(name, device or self.device, keep_alive)
        try:
            yield entry.model
        finally:
            self._release(entry)

    def _acquire(self, name: str, device: str, keep_alive: float | None) -> _Entry:
        spec = self.registry.get(name)
        low, high = self.keep_alive_range
        alive = self.keep_alive if keep_alive is None else min(high, max(low, keep_alive))
        with self._lock:
            while True:
                entry = self._entries.get(spec.name)
                if entry is None:
                    break
                if entry.loaded.is_set():
                    entry.refs += 1
                    entry.last_used = time.monotonic()
                    entry.keep_alive = max(entry.keep_alive, alive)
                    return entry
                self._changed.wait()  # another thread is loading it: share that load
            choice = choose_device(device, spec.kind, estimate(spec, "cuda"))
            entry = self._reserve(spec, choice, alive)
            entry.refs = 1
        return self._load(entry)

    def _reserve(self, spec: ModelSpec, choice: DeviceChoice, alive: float) -> _Entry:
        gpu = choice.device.startswith("cuda")
        size = estimate(spec, choice.device)
        budget = self._budget(gpu)
        if budget is not None and size > budget:
            raise self._too_large(spec, size, budget, gpu)
        if not self._evict_for(size, gpu, protect=spec.name):
            if gpu and self.retry_on_cpu:
                return self._reserve(spec, DeviceChoice("cpu", "GPU budget full of models in use"), alive)
            raise self._too_large(spec, size, budget or 0, gpu, in_use=True)
        entry = _Entry(spec, choice, size, alive)
        self._entries[spec.name] = entry
        return entry

    def _too_large(
        self, spec: ModelSpec, size: int, budget: int, gpu: bool, in_use: bool = False
    ) -> errors.ModelTooLarge:
        where = "GPU" if gpu else "RAM"
        mib = 2**20
        if in_use:
            busy = ", ".join(f"{n} ({e.bytes / mib:.0f} MiB)" for n, e in self._entries.items() if not e.idle)
            return errors.ModelTooLarge(
                f"{spec.name} needs ~{size / mib:.0f} MiB but the {where} budget of {budget / mib:.0f} MiB "
                f"is held by models in use: {busy or 'none'}"
            )
        return errors.ModelTooLarge(
            f"{spec.name} needs ~{size / mib:.0f} MiB, more than the whole {where} budget of {budget / mib:.0f} MiB"
        )

    def _load(self, entry: _Entry) -> _Entry:
        """Load a reserved entry; returns the entry that ended up loaded (a CPU retry is a new one)."""
        spec = entry.spec
        before = entry.rss_before = rss()
        gpu_before = self._gpu_used(entry.device)
        start = time.perf_counter()
        try:
            model = load_model(spec, entry.device, self.threads)
        except Exception as exc:
            if entry.device.startswith("cuda") and self.retry_on_cpu:
                with self._lock:
                    del self._entries[spec.name]
                    retry = self._reserve(spec, DeviceChoice("cpu", f"GPU load failed: {exc}"), entry.keep_alive)
                    retry.refs = entry.refs
                return self._load(retry)
            with self._lock:
                entry.error = exc
                self._entries.pop(spec.name, None)
                entry.loaded.set()
                self._changed.notify_all()
            if isinstance(exc, errors.VoxmillError):
                raise
            raise errors.ModelLoadError(f"{spec.name}: cannot load {spec.path}: {exc}") from exc
        seconds = time.perf_counter() - start
        if entry.device.startswith("cuda"):
            measured = max(0, self._gpu_used(entry.device) - gpu_before)
        else:
            measured = max(0, rss() - before)
        with self._lock:
            entry.model = model
            entry.load_seconds = seconds
            self._loads += 1
            entry.load_serial = self._loads
            # A concurrent load elsewhere can inflate or hide an RSS delta; trust it only when plausible.
            if spec.kind != "whisper":
                # ONNX weights load as stored: resident size is never below the file's.
                measured = max(measured, spec.size_bytes)
            if measured > spec.size_bytes // 4:
                entry.measured = remember(spec.name, entry.device, measured)
            gpu = entry.device.startswith("cuda")
            over = self._budget(gpu) is not None and self._used(gpu) > (self._budget(gpu) or 0)
            if over and not self._evict_for(0, gpu, protect=spec.name, adding=0):
                self._drop(entry, "unload")
                entry.error = self._too_large(spec, entry.bytes, self._budget(gpu) or 0, gpu, in_use=True)
                entry.loaded.set()
                raise entry.error
            entry.loaded.set()
            self._changed.notify_all()
        self._emit("load", name=spec.name, device=entry.device, seconds=seconds, bytes=entry.bytes,
                   estimated=entry.estimate, fallback_reason=entry.fallback_reason)  # fmt: skip
        self._start_reaper()
        return entry

    def _gpu_used(self, device: str) -> int:
        if not device.startswith("cuda"):
            return 0
        index = int(device.split(":")[1]) if ":" in device else 0
        found, _ = gpus()
        return next((g.used_bytes for g in found if g.index == index), 0)

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            entry.refs -= 1
            entry.last_used = time.monotonic()
            if entry.refs == 0 and not entry.remeasured:
                self._remeasure(entry)
            if entry.refs == 0 and entry.keep_alive <= 0 and not entry.pinned:
                self._drop(entry, "unload")
            self._changed.notify_all()

    def _remeasure(self, entry: _Entry) -> None:
        """After the first use, count what the model kept (inference arenas, caches) in its size.

        Only on CPU and only if no other model loaded since: otherwise the RSS delta is not this one's.
        """
        entry.remeasured = True
        if entry.device.startswith("cuda") or entry.load_serial != self._loads:
            return
        grown = rss() - entry.rss_before
        if grown > entry.bytes:
            entry.measured = remember(entry.spec.name, entry.device, grown)
            budget = self._budget(False)
            if budget is not None and self._used(False) > budget:
                self._evict_for(0, False, protect=entry.spec.name, adding=0)

    # ---- keep-alive ---------------------------------------------------------------------------------

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = threading.Thread(target=self._reap, name="voxmill-model-reaper", daemon=True)
                self._reaper.start()

    def _reap(self) -> None:
        with self._lock:
            while not self._closed and self._entries:
                now = time.monotonic()
                wake = 60.0
                for entry in list(self._entries.values()):
                    if not entry.idle:
                        continue
                    left = entry.last_used + entry.keep_alive - now
                    if left <= 0:
                        self._drop(entry, "unload")
                    else:
                        wake = min(wake, left)
                self._changed.wait(timeout=wake)

    def expire(self) -> int:
        """Unload idle models past their keep-alive now; returns how many."""
        with self._lock:
            now = time.monotonic()
            stale = [e for e in self._entries.values() if e.idle and e.last_used + e.keep_alive <= now]
            for entry in stale:
                self._drop(entry, "unload")
            return len(stale)

    # ---- explicit control -----------------------------------------------------------------------------

    def pin(self, name: str, device: str | None = None) -> None:
        """Load ``name`` if needed and keep it until ``unpin`` (never evicted, never expired)."""
        entry = self._acquire(name, device or self.device, None)
        with self._lock:
            entry.pinned = True
        self._release(entry)

    def unpin(self, name: str) -> None:
        with self._lock:
            entry = self._entries.get(self.registry.get(name).name)
            if entry is not None:
                entry.pinned = False
                entry.last_used = time.monotonic()
                self._changed.notify_all()

    def unload(self, name: str, wait: bool = False, timeout: float | None = None) -> bool:
        """Unload ``name``; a model in use is refused (ModelError) unless ``wait`` for its leases to end."""
        key = self.registry.get(name).name
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                entry = self._entries.get(key)
                if entry is None:
                    return False
                if entry.refs == 0 and entry.loaded.is_set():
                    self._drop(entry, "unload")
                    return True
                if not wait:
                    raise errors.ModelError(f"{key} is in use ({entry.refs} lease(s)); pass wait=True to wait")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise errors.ModelError(f"{key} still in use after {timeout:g}s")
                self._changed.wait(timeout=left)

    def unload_all(self) -> None:
        """Unload every model that is not in use (pinned ones included)."""
        with self._lock:
            for entry in list(self._entries.values()):
                if entry.refs == 0 and entry.loaded.is_set():
                    self._drop(entry, "unload")

    def preload(self, profile: str) -> list[str]:
        """Load and pin every model of a profile (``profiles:`` in voxmill.yaml)."""
        names = self._profile(profile)
        for name in names:
            self.pin(name)
        return names

    def release(self, profile: str) -> None:
        """Unpin a profile's models; they then expire like any idle model."""
        for name in self._profile(profile):
            self.unpin(name)

    def _profile(self, profile: str) -> list[str]:
        if profile not in self.profiles:
            known = ", ".join(sorted(self.profiles)) or "none configured"
            raise errors.ConfigError(f"unknown model profile {profile!r}; known: {known}")
        return self.profiles[profile]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self.unload_all()
            self._changed.notify_all()

    # ---- status --------------------------------------------------------------------------------------

    def status(self) -> list[ModelStatus]:
        now = time.monotonic()
        with self._lock:
            rows = []
            for entry in self._entries.values():
                expires = None
                if entry.idle:
                    expires = max(0.0, entry.last_used + entry.keep_alive - now)
                rows.append(
                    ModelStatus(
                        name=entry.spec.name,
                        kind=entry.spec.kind,
                        device=entry.device,
                        estimated_bytes=entry.estimate,
                        measured_bytes=entry.measured,
                        refs=entry.refs,
                        pinned=entry.pinned,
                        last_used=time.time() - (now - entry.last_used),
                        expires_in=expires,
                        load_seconds=entry.load_seconds,
                        fallback_reason=entry.fallback_reason,
                    )
                )
            return rows

    def used_bytes(self, gpu: bool = False) -> int:
        with self._lock:
            return self._used(gpu)

    def alert(self, message: str, **info: Any) -> None:
        """Raise an alert event (the memory monitor uses this)."""
        self._emit("alert", message=message, **info)
