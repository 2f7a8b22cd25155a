"""The one place models are loaded: refcounted leases under a byte budget, keep-alive, eviction.

Modelled on Ollama's scheduler (estimate before loading, refcounts, keep-alive, evict then retry),
with a budget on RAM and on each GPU. The accounting and the eviction order live in ``budget.py``;
this module leases, loads, measures, expires and reports. A load that cannot fit after evicting every
idle model raises ModelTooLarge; one that turns out bigger than estimated evicts more, or is
unloaded again.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psutil

from voxmill import errors
from voxmill.config import Settings
from voxmill.models.budget import Budget, Entry, ModelStatus
from voxmill.models.devices import DeviceChoice, choose_device, gpus
from voxmill.models.loaders import load_model, model_note
from voxmill.models.registry import ModelSpec, Registry
from voxmill.models.sizing import estimate, rss, trim_heap

__all__ = ["ModelManager", "ModelStatus"]

EVENTS = ("load", "unload", "evict", "alert")


class ModelManager:
    """Loads models on demand and holds them under ``budget_bytes`` (RAM) and ``gpu_budget_bytes``.

    ``with manager.lease("piper:en_US-joe-medium") as voice:`` holds a reference; concurrent leases
    share one instance, and a leased model is never evicted. ``keep_alive`` seconds after its last
    lease ends an idle model is unloaded. A lease's own ``keep_alive`` sets the model's (the latest
    request wins, as in Ollama: 0 unloads it once no lease holds it, negative or ``math.inf`` keeps it),
    clamped to ``keep_alive_range``; a lease without one never shortens what an earlier one asked for.
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
        self.budget = Budget(budget_bytes, gpu_budget_bytes, max_loaded)
        self.keep_alive = keep_alive
        self.keep_alive_range = keep_alive_range
        self.registry = registry or Registry()
        self.device = device
        self.threads = threads
        self.retry_on_cpu = retry_on_cpu
        self.profiles = dict(profiles or {})
        self._entries = self.budget.entries  # the same dict: the budget accounts what is held here
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._listeners: dict[str, list[Callable[[str, dict[str, Any]], None]]] = {e: [] for e in EVENTS}
        self._reaper: threading.Thread | None = None
        self._closed = False
        self._loads = 0  # counts loads, so a later RSS delta is only trusted if nothing else loaded

    @classmethod
    def from_settings(cls, settings: Settings, threads: int) -> ModelManager:
        """A manager with the budget, GPU budget, keep-alive, voices dir, device and profiles of
        ``settings``; each model session runs ``threads`` native threads (the caller's core budget)."""
        return cls(
            budget_bytes=settings.budget,
            gpu_budget_bytes=settings.gpu_budget,
            keep_alive=settings.keep_alive,
            registry=Registry(settings.voices_dir),
            device=settings.device,
            threads=threads,
            profiles=settings.profiles,
        )

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

    @property
    def budget_bytes(self) -> int:
        return self.budget.ram_bytes

    @property
    def gpu_budget_bytes(self) -> int | None:
        return self.budget.gpu_bytes

    @property
    def max_loaded(self) -> int | None:
        return self.budget.max_loaded

    def _evict_for(self, need: int, gpu: bool, protect: str, adding: int = 1) -> bool:
        return self.budget.evict_for(need, gpu, protect, lambda e: self._drop(e, "evict"), adding)

    def _drop(self, entry: Entry, event: str) -> None:
        name = entry.spec.name
        if self._entries.get(name) is entry:
            del self._entries[name]
        entry.model = None
        trim_heap()
        self._emit(event, name=name, device=entry.device, bytes=entry.bytes)
        self._changed.notify_all()

    # ---- leases -------------------------------------------------------------------------------------

    @contextmanager
    def lease(
        self, spec_or_name: ModelSpec | str, device: str | None = None, keep_alive: float | None = None
    ) -> Iterator[Any]:
        """Hold a model loaded for the ``with`` block; yields the model object (see ``loaders``).

        A ``ModelSpec`` (resolved once, in the parent) is used as it is and registered if new; a name
        is looked up in the registry.
        """
        entry = self._acquire(spec_or_name, device or self.device, keep_alive)
        try:
            yield entry.model
        finally:
            self._release(entry)

    def _spec(self, spec_or_name: ModelSpec | str) -> ModelSpec:
        if isinstance(spec_or_name, ModelSpec):
            if not self.registry.known(spec_or_name):
                self.registry.add(spec_or_name)
            return spec_or_name
        return self.registry.get(spec_or_name)

    def _acquire(self, spec_or_name: ModelSpec | str, device: str, keep_alive: float | None) -> Entry:
        spec = self._spec(spec_or_name)
        alive = self.keep_alive if keep_alive is None else self._clamped(keep_alive)
        identity = spec.identity()  # a lease whose identity differs from the loaded model's reloads
        with self._lock:
            while True:
                entry = self._entries.get(spec.name)
                if entry is None:
                    break
                if (
                    entry.loaded.is_set()
                    and entry.identity != identity
                    and not (entry.refs and entry.spec.path == spec.path)
                ):
                    # Another file of the same name (two folders' "model.onnx"), or this one changed on
                    # disk: what is loaded is not what was asked for. (The same file changed under a run
                    # that holds it is shared as loaded: that run keeps the model it started with.)
                    if entry.refs:
                        raise errors.ModelError(
                            f"{spec.name}: another model of that name ({entry.spec.path}) is in use; "
                            "give the files different names"
                        )
                    self._drop(entry, "unload")
                    continue
                if entry.loaded.is_set():
                    entry.refs += 1
                    entry.last_used = time.monotonic()
                    # An explicit keep-alive is the latest request's word; the default only lengthens.
                    entry.keep_alive = alive if keep_alive is not None else max(entry.keep_alive, alive)
                    return entry
                self._changed.wait()  # another thread is loading it: share that load
            choice = choose_device(device, spec.kind, estimate(spec, "cuda"))
            entry = self._reserve(spec, choice, alive)
            entry.refs = 1
            entry.identity = identity
        return self._load(entry)

    def _clamped(self, keep_alive: float) -> float:
        low, high = self.keep_alive_range
        if keep_alive < 0 or math.isnan(keep_alive):
            keep_alive = math.inf  # Ollama's "negative: keep it loaded" (NaN cannot mean unload)
        return min(high, max(low, keep_alive))

    def _reserve(self, spec: ModelSpec, choice: DeviceChoice, alive: float) -> Entry:
        gpu = choice.device.startswith("cuda")
        size = estimate(spec, choice.device)
        limit = self.budget.limit(gpu)
        if limit is not None and size > limit:
            raise self.budget.too_large(spec, size, gpu)
        if not self._evict_for(size, gpu, protect=spec.name):
            if gpu and self.retry_on_cpu:
                return self._reserve(spec, DeviceChoice("cpu", "GPU budget full of models in use"), alive)
            raise self.budget.too_large(spec, size, gpu, in_use=True)
        entry = Entry(spec, choice, size, alive)
        self._entries[spec.name] = entry
        return entry

    def _load(self, entry: Entry) -> Entry:
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
                    self._entries.pop(spec.name, None)
                    try:
                        retry = self._reserve(spec, DeviceChoice("cpu", f"GPU load failed: {exc}"), entry.keep_alive)
                    except BaseException as failed:  # no room on the CPU either: wake the leases waiting for it
                        entry.error = failed
                        entry.loaded.set()
                        self._changed.notify_all()
                        raise
                    retry.refs, retry.identity = entry.refs, entry.identity
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
        # Loading frees the graph's protobuf copies, but glibc keeps the pages (~60 MB for a Piper voice):
        # given back, the process's RSS and this model's measured size are what it really holds.
        trim_heap()
        if entry.device.startswith("cuda"):
            measured = max(0, self._gpu_used(entry.device) - gpu_before)
        else:
            measured = max(0, rss() - before)
        note = model_note(spec, entry.device)
        with self._lock:
            entry.model = model
            entry.note = note
            entry.load_seconds = seconds
            self._loads += 1
            entry.load_serial = self._loads
            entry.measure(measured)
            gpu = entry.gpu
            if self.budget.over(gpu) and not self._evict_for(0, gpu, protect=spec.name, adding=0):
                self._drop(entry, "unload")
                entry.error = self.budget.too_large(spec, entry.bytes, gpu, in_use=True)
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

    def _release(self, entry: Entry) -> None:
        with self._lock:
            entry.refs -= 1
            entry.last_used = time.monotonic()
            if entry.refs == 0 and not entry.remeasured:
                self._remeasure(entry)
            held = self._entries.get(entry.spec.name) is entry  # not dropped by the re-measure above
            if held and entry.refs == 0 and entry.keep_alive <= 0 and not entry.pinned:
                self._drop(entry, "unload")
            self._changed.notify_all()

    def _remeasure(self, entry: Entry) -> None:
        """After the first use, count what the model kept (inference arenas, caches) in its size.

        Only on CPU and only if no other model loaded since: otherwise the RSS delta is not this one's.
        """
        entry.remeasured = True
        if entry.device.startswith("cuda") or entry.load_serial != self._loads:
            return
        if (
            entry.grew_to(rss() - entry.rss_before)
            and self.budget.over(False)
            and not self._evict_for(0, False, protect=entry.spec.name, adding=0)
            and entry.idle
        ):
            self._drop(entry, "evict")  # idle now: rather free it than hold more than the budget

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

    def pin(self, name: ModelSpec | str, device: str | None = None) -> None:
        """Load ``name`` if needed and keep it until ``unpin`` (never evicted, never expired)."""
        entry = self._acquire(name, device or self.device, None)
        with self._lock:
            entry.pinned = True
        self._release(entry)

    def unpin(self, name: ModelSpec | str) -> None:
        with self._lock:
            entry = self._entries.get(self._spec(name).name)
            if entry is not None:
                entry.pinned = False
                entry.last_used = time.monotonic()
                self._changed.notify_all()

    def unload(self, name: ModelSpec | str, wait: bool = False, timeout: float | None = None) -> bool:
        """Unload ``name``; a model in use is refused (ModelError) unless ``wait`` for its leases to end."""
        key = self._spec(name).name
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

    def free_idle(self, device: str | None = None) -> list[str]:
        """Unload every idle model (not in use, not pinned) on ``device`` (``cpu``, ``cuda:N``; None: all
        devices) now, whatever its keep-alive; returns their names. The memory monitor's cleanup."""
        with self._lock:
            idle = [e for e in self._entries.values() if e.idle and device in (None, e.device)]
            for entry in idle:
                self._drop(entry, "evict")
            return [e.spec.name for e in idle]

    def set_keep_alive(self, seconds: float) -> None:
        """Change the default keep-alive at run time; idle models that were kept for the old default
        follow the new one (those a request gave its own keep-alive keep it)."""
        with self._lock:
            old, self.keep_alive = self.keep_alive, seconds
            for entry in self._entries.values():
                if entry.keep_alive == old:
                    entry.keep_alive = seconds
            self._changed.notify_all()  # the reaper recomputes when to wake

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
            return [entry.status(now) for entry in self._entries.values()]

    def used_bytes(self, gpu: bool = False) -> int:
        with self._lock:
            return self.budget.used(gpu)

    def alert(self, message: str, **info: Any) -> None:
        """Raise an alert event (the memory monitor uses this)."""
        self._emit("alert", message=message, **info)
