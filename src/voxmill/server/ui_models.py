"""The Models tab's data and actions: what is known and loaded, memory history, alerts, cleanup settings.

Plain code over the server state (no Gradio here): ``ui_models_tab`` wires it to components. Actions
go through the admin API's helpers (the same checks and messages as ``/api/load``), blocking: they run
on Gradio's worker threads. Every name is looked up among the known models, never used as a path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil

from voxmill import errors
from voxmill.models import ModelSpec, ModelStatus
from voxmill.models.registry import shown
from voxmill.server.admin import apply_settings, load_model, resolve_model, settings_view, unload_model
from voxmill.server.catalog import SERVED_KINDS
from voxmill.server.state import ServerState, parse_keep_alive

__all__ = ["ALERT_COLUMNS", "CHART_COLUMNS", "DEVICES", "KEEP_ALIVE_CHOICES", "TABLE_COLUMNS", "Cleanup", "ModelsView"]

GIB = 2**30
MIB = 2**20
DEVICES = ("auto", "cpu", "cuda")
KEEP_ALIVE_CHOICES = ("default", "1m", "5m", "30m", "1h", "24h")
TABLE_COLUMNS = ("model", "kind", "on disk", "loaded", "device", "memory", "refs", "expires", "pinned")
CHART_COLUMNS = ("time", "series", "GiB")
ALERT_COLUMNS = ("time", "source", "message")


@dataclass(frozen=True)
class Cleanup:
    """The auto-cleanup settings as the UI shows them: idle timeout (seconds) and thresholds (percent)."""

    idle_timeout: float
    ram_cleanup: float
    gpu_cleanup: float
    ram_alert: float
    gpu_alert: float


class ModelsView:
    """The Models tab over one server's state; keeps file sizes so a refresh does not walk folders."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self._sizes: dict[tuple[str, str], int] = {}

    # ---- what is shown -------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The models the server can load by name (the table also lists the others it knows)."""
        return [spec.name for spec in self.state.manager.registry.all() if spec.kind in SERVED_KINDS]

    def table(self) -> list[list[Any]]:
        """One row (``TABLE_COLUMNS``) per known model, and per loaded one the registry does not list."""
        manager = self.state.manager
        loaded = {status.name: status for status in manager.status()}
        specs = {spec.name: spec for spec in manager.registry.all()}
        broken = {item.name: item for item in manager.registry.broken()}
        rows = []
        for name in sorted(set(specs) | set(loaded) | set(broken)):
            spec, status = specs.get(name), loaded.get(name)
            if spec is None and status is None:
                rows.append([name, broken[name].kind, "", f"broken: {broken[name].reason}", "", "", "", "", ""])
                continue
            kind = spec.kind if spec is not None else status.kind if status is not None else ""
            disk = _mib(self._disk(spec)) if spec is not None else ""
            rows.append([name, kind, disk, *(_loaded(status) if status else ["no", "", "", "", "", ""])])
        return rows

    def _disk(self, spec: ModelSpec) -> int:
        key = (spec.name, str(spec.path))
        if key not in self._sizes:
            try:
                self._sizes[key] = spec.size_bytes
            except OSError:
                self._sizes[key] = 0
        return self._sizes[key]

    def memory(self, minutes: float) -> list[tuple[datetime, str, float]]:
        """The monitor's history as long-form rows (``CHART_COLUMNS``: time, series, GiB) for one chart."""
        memory = psutil.virtual_memory()
        total = memory.total
        rows: list[tuple[datetime, str, float]] = []
        samples = self.state.monitor.history(minutes)
        if not samples:
            # Gradio's chart draws no lines at all if it was first given no rows: show "now" until the
            # monitor's first sample (without taking one: sampling may free models).
            now = datetime.now()
            rows.append((now, "RAM used", (total - memory.available) / GIB))
            rows.append((now, "server RSS", psutil.Process().memory_info().rss / GIB))
        for sample in samples:
            when = datetime.fromtimestamp(sample.time)
            rows.append((when, "RAM used", sample.ram_used_fraction * total / GIB))
            rows.append((when, "server RSS", sample.process_rss_bytes / GIB))
            for gpu in sample.gpus:
                rows.append((when, f"GPU {gpu.index} used", gpu.used_bytes / GIB))
        return [(when, series, round(gib, 3)) for when, series, gib in rows]

    def alerts(self, limit: int = 50) -> list[tuple[str, str, str]]:
        """The newest ``limit`` alerts first (``ALERT_COLUMNS``)."""
        return [
            (datetime.fromtimestamp(alert.get("time", 0)).strftime("%H:%M:%S"), str(alert.get("source", "")),
             str(alert.get("message", "")))
            for alert in reversed(list(self.state.alerts)[-limit:])
        ]  # fmt: skip

    def profiles(self) -> list[str]:
        return sorted(self.state.manager.profiles)

    def cleanup(self) -> Cleanup:
        """The cleanup settings in force now (they may have changed through ``POST /api/settings``)."""
        now = settings_view(self.state)
        return Cleanup(
            idle_timeout=float(now["keep_alive"]),
            ram_cleanup=100 * float(now["ram_cleanup"]),
            gpu_cleanup=100 * float(now["gpu_cleanup"]),
            ram_alert=100 * float(now["ram_alert"]),
            gpu_alert=100 * float(now["gpu_alert"]),
        )

    # ---- actions (each returns the status line; blocking: Gradio runs them on worker threads) -------

    def spec(self, name: str | None) -> ModelSpec:
        if not name:
            raise errors.ConfigError("choose a model first")
        return resolve_model(self.state, name)

    def load(self, name: str | None, device: str | None, keep_alive: str | None) -> str:
        self.spec(name)
        keep = None if keep_alive in (None, "", "default") else keep_alive
        if _keep_alive(keep) == 0:
            raise errors.ConfigError("keep-alive 0 would unload the model at once: choose a duration")
        started = time.perf_counter()
        loaded = load_model(self.state, str(name), _device(device), keep, None)
        return f"{loaded} loaded{self._where(loaded)} in {time.perf_counter() - started:.1f} s"

    def pin(self, name: str | None, device: str | None) -> str:
        self.spec(name)
        pinned = load_model(self.state, str(name), _device(device), None, True)
        return f"{pinned} pinned{self._where(pinned)}: kept until unpinned"

    def unpin(self, name: str | None) -> str:
        spec = self.spec(name)
        if self._status(spec.name) is None:
            return f"{spec.name} is not loaded"
        self.state.manager.unpin(spec)
        return f"{spec.name} unpinned: it now expires when idle"

    def unload(self, name: str | None) -> str:
        self.spec(name)
        key, was_loaded = unload_model(self.state, str(name))
        return f"{key} unloaded" if was_loaded else f"{key} was not loaded"

    def preload(self, profile: str | None) -> str:
        names = self.state.manager.preload(self._profile(profile))
        return f"profile {profile}: loaded and pinned {', '.join(names) or 'nothing'}"

    def release(self, profile: str | None) -> str:
        self.state.manager.release(self._profile(profile))
        return f"profile {profile}: released (its models expire when idle)"

    def apply(self, idle_timeout: str | None, *percents: float | None) -> str:
        """Set the idle timeout and the RAM/GPU cleanup and alert thresholds (percent of memory used)."""
        names = ("ram_cleanup", "gpu_cleanup", "ram_alert", "gpu_alert")
        values: dict[str, Any] = {"keep_alive": (idle_timeout or "").strip() or None}
        for name, value in zip(names, percents, strict=True):
            if value is None:
                raise errors.ConfigError(f"{name.replace('_', ' ')}: give a percentage from 1 to 100")
            values[name] = f"{float(value):g}%"
        now = apply_settings(self.state, values)
        return (f"applied: idle timeout {now['keep_alive']:g} s; cleanup at RAM {now['ram_cleanup']:.0%}, "
                f"GPU {now['gpu_cleanup']:.0%}; alerts at RAM {now['ram_alert']:.0%}, "
                f"GPU {now['gpu_alert']:.0%}")  # fmt: skip

    def _profile(self, profile: str | None) -> str:
        if not profile:
            known = ", ".join(self.profiles()) or "none configured (profiles: in voxmill.yaml)"
            raise errors.ConfigError(f"choose a profile first; known: {known}")
        return profile

    def _status(self, name: str) -> ModelStatus | None:
        return next((s for s in self.state.manager.status() if s.name == name), None)

    def _where(self, name: str) -> str:
        status = self._status(name)
        if status is None:
            return ""
        fallback = f" ({status.fallback_reason})" if status.fallback_reason else ""
        return f" on {status.device}{fallback}, {_mib(max(status.estimated_bytes, status.measured_bytes or 0))}"


def _device(choice: str | None) -> str | None:
    if choice in (None, ""):
        return None
    if choice not in DEVICES:
        raise errors.ConfigError(f"device: expected one of {', '.join(DEVICES)}, got {shown(repr(choice))}")
    return choice


def _keep_alive(value: str | None) -> float | None:
    try:
        return parse_keep_alive(value)
    except OverflowError:
        raise errors.ConfigError(f"keep_alive: {shown(repr(value))} is out of range") from None


def _loaded(status: ModelStatus) -> list[Any]:
    memory = _mib(max(status.estimated_bytes, status.measured_bytes or 0))
    device = status.device + (f" ({status.fallback_reason})" if status.fallback_reason else "")
    if status.loading:
        return ["loading", device, memory, status.refs, "", "yes" if status.pinned else ""]
    if status.pinned:
        expires = "never (pinned)"
    elif status.expires_in is None:
        expires = "in use"
    else:
        expires = f"in {_duration(status.expires_in)}"
    return ["yes", device, memory, status.refs, expires, "yes" if status.pinned else ""]


def _mib(size: int) -> str:
    return f"{size / GIB:.2f} GiB" if size >= GIB else f"{size / MIB:.0f} MiB"


def _duration(seconds: float) -> str:
    whole = round(seconds)
    if whole >= 3600:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 60}m {whole % 60:02d}s" if whole >= 60 else f"{whole}s"
