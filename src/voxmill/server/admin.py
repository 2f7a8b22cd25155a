"""Model administration: what is loaded (``/api/ps``), load / unload, profiles, run-time settings, the
alert log and the memory history, plus Triton's repository API (``/v2/repository``). Every route needs
the admin token (``require_admin``).

Loads run on a thread, never on the event loop. ``keep_alive`` has Ollama's meaning (a duration or
seconds; 0: unload once no request holds the model; negative: keep it, up to the manager's range), and
the latest request's keep-alive is the model's. A model in use cannot be unloaded: 409.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from datetime import datetime, timezone
from functools import partial
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, StringConstraints

from voxmill import errors
from voxmill.config import parse_duration
from voxmill.models import ModelSpec, ModelStatus
from voxmill.models.registry import is_path, shown
from voxmill.server.auth import require_admin
from voxmill.server.catalog import SERVED_KINDS, catalog
from voxmill.server.problems import ApiError
from voxmill.server.state import ServerState, parse_keep_alive

__all__ = ["apply_settings", "ps_row", "resolve_model", "router", "settings_view"]

router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])

DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,3})?")
SETTINGS = ("keep_alive", "ram_cleanup", "gpu_cleanup", "ram_alert", "gpu_alert")
Short = Annotated[StrictStr, StringConstraints(max_length=40)]  # error messages echo the value
Duration = StrictInt | StrictFloat | Short  # "5m", 300, -1


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())  # Ollama clients send more fields


class LoadBody(_Body):
    model: StrictStr = Field(min_length=1, max_length=300)
    device: StrictStr | None = Field(None, max_length=20)
    keep_alive: Duration | None = Field(None, description="duration or seconds; 0: unload after; negative: keep")
    pin: StrictBool | None = Field(None, description="true: never evicted nor expired; false: unpin")


class UnloadBody(_Body):
    model: StrictStr = Field(min_length=1, max_length=300)


class SettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting must not be silently ignored
    # Checked by apply_settings (one-line messages naming the setting), not by pydantic's type unions.
    keep_alive: Any = Field(None, description="idle timeout: duration or seconds")
    ram_cleanup: Any = Field(None, description="share of RAM in use at which idle models are freed: 0.85 or 85%")
    gpu_cleanup: Any = Field(None, description="share of a GPU's memory in use at which idle models are freed")
    ram_alert: Any = Field(None, description="share of RAM in use that raises an alert")
    gpu_alert: Any = Field(None, description="share of a GPU's memory in use that raises an alert")


class TritonIndexBody(_Body):
    ready: StrictBool = False


class TritonLoadBody(_Body):
    parameters: dict[str, Any] = Field(default_factory=dict)


# ---- helpers the web UI may share ------------------------------------------------------------------


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def ps_row(row: ModelStatus, now: float) -> dict[str, Any]:
    """One loaded model as ``/api/ps`` shows it (``size``/``size_vram`` as Ollama names them)."""
    size = max(row.estimated_bytes, row.measured_bytes or 0)
    gpu = row.device.startswith("cuda")
    return {
        "name": row.name,
        "model": row.name,
        "kind": row.kind,
        "device": row.device,
        "state": "loading" if row.loading else "in_use" if row.refs else "idle",
        "size": size,
        "size_ram": 0 if gpu else size,
        "size_vram": size if gpu else 0,
        "estimated_bytes": row.estimated_bytes,
        "measured_bytes": row.measured_bytes,
        "refs": row.refs,
        "pinned": row.pinned,
        "expires_at": None if row.expires_in is None else _iso(now + row.expires_in),
        "expires_in": row.expires_in,
        "last_used": _iso(row.last_used),
        "load_seconds": round(row.load_seconds, 3),
        "fallback_reason": row.fallback_reason,
        "note": row.note,
    }


def _rows(state: ServerState) -> dict[str, ModelStatus]:
    return {row.name: row for row in state.manager.status()}


def resolve_model(state: ServerState, name: str) -> ModelSpec:
    """A Piper voice or Whisper model by name or alias: the kind from the name's prefix, else a voice,
    else an ASR model. ModelNotFound (404) with close matches among both kinds."""
    kind = name.partition(":")[0] if ":" in name else None
    if kind in SERVED_KINDS or is_path(name) or len(name) > 300:
        return state.resolve(name, kind or "piper")
    for each in SERVED_KINDS:
        try:
            return state.resolve(name, each)
        except errors.ModelNotFound:
            continue
    names = [str(entry["id"]) for entry in catalog(state)]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    hint = f" (did you mean {', '.join(map(shown, close))}?)" if close else ""
    raise errors.ModelNotFound(f"unknown model {shown(repr(name))}{hint}; see GET /v1/models")


def _keep_alive(value: Any) -> float | None:
    try:
        return parse_keep_alive(value)
    except OverflowError:
        raise ApiError(400, f"keep_alive: {shown(repr(value))} is out of range", "invalid_keep_alive",
                       "keep_alive") from None  # fmt: skip
    except errors.ConfigError as exc:
        raise ApiError(400, str(exc), "invalid_keep_alive", "keep_alive") from None


def _device(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not DEVICE.fullmatch(value):
        raise ApiError(400, f"device: expected auto, cpu, cuda or cuda:N, got {shown(repr(value))}",
                       "invalid_device", "device")  # fmt: skip
    return value


def _model_state(state: ServerState, name: str) -> dict[str, Any]:
    now = datetime.now(timezone.utc).timestamp()
    row = _rows(state).get(name)
    if row is None:
        return {"model": name, "status": "unloaded", "loaded": False}
    return {**ps_row(row, now), "status": "loaded", "loaded": True}


def load_model(state: ServerState, name: str, device: str | None, keep_alive: Any, pin: bool | None) -> str:
    """Load (blocking: call it on a thread) and set the model's keep-alive and pin; returns its name."""
    spec = resolve_model(state, name)
    seconds = _keep_alive(keep_alive)
    manager = state.manager
    with manager.lease(spec, device=_device(device), keep_alive=seconds):
        if pin:
            manager.pin(spec, device=_device(device))
        elif pin is False:
            manager.unpin(spec)
    return spec.name


def unload_model(state: ServerState, name: str) -> tuple[str, bool]:
    """Unload (blocking); returns (name, whether it was loaded). 409 while a request holds it."""
    rows = _rows(state)
    key = name if name in rows else resolve_model(state, name).name
    row = rows.get(key)
    if row is None:
        return key, False
    try:
        return key, state.manager.unload(key)
    except errors.ModelError:
        held = _rows(state).get(key)
        refs = held.refs if held else row.refs
        raise ApiError(409, f"{key} is in use ({refs} request(s) hold it); unload it when they end, or load it "
                       "with keep_alive 0 to unload it then", "model_in_use", "model") from None  # fmt: skip


# ---- /api: Ollama-shaped -------------------------------------------------------------------------------


@router.get("/api/ps")
def ps(request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.voxmill
    manager = state.manager
    now = datetime.now(timezone.utc).timestamp()
    return {
        "models": [ps_row(row, now) for row in manager.status()],
        "budget": {
            "ram_bytes": manager.budget_bytes,
            "ram_used_bytes": manager.used_bytes(gpu=False),
            "gpu_bytes": manager.gpu_budget_bytes,
            "gpu_used_bytes": manager.used_bytes(gpu=True),
            "max_loaded": manager.max_loaded,
        },
    }


@router.post("/api/load")
async def load(body: LoadBody, request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.voxmill
    name = await anyio.to_thread.run_sync(partial(load_model, state, body.model, body.device, body.keep_alive,
                                                  body.pin))  # fmt: skip
    request.state.model = name
    return _model_state(state, name)


@router.post("/api/unload")
async def unload(body: UnloadBody, request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.voxmill
    name, was_loaded = await anyio.to_thread.run_sync(unload_model, state, body.model)
    request.state.model = name
    return {"model": name, "status": "unloaded" if was_loaded else "not_loaded", "loaded": False,
            "unloaded": was_loaded}  # fmt: skip


def _profile(state: ServerState, name: str) -> list[str]:
    profiles = state.manager.profiles
    if name not in profiles:
        close = difflib.get_close_matches(name, list(profiles), n=3, cutoff=0.4) if len(name) <= 200 else []
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        known = ", ".join(sorted(profiles)) or "none configured"
        raise ApiError(404, f"unknown profile {shown(repr(name))}{hint}; known: {known}", "profile_not_found")
    return list(profiles[name])


@router.get("/api/profiles")
def profiles(request: Request) -> dict[str, Any]:
    return {"profiles": {name: list(models) for name, models in request.app.state.voxmill.manager.profiles.items()}}


@router.post("/api/profiles/{name}/{action}")
async def profile_action(name: str, action: Literal["preload", "release"], request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.voxmill
    _profile(state, name)
    if action == "preload":
        names = await anyio.to_thread.run_sync(state.manager.preload, name)
    else:
        names = _profile(state, name)
        await anyio.to_thread.run_sync(state.manager.release, name)
    return {"profile": name, "status": "preloaded" if action == "preload" else "released",
            "models": [_model_state(state, n) for n in names]}  # fmt: skip


# ---- settings, alerts, memory ----------------------------------------------------------------------------


def settings_view(state: ServerState) -> dict[str, Any]:
    """The settings in force now (the manager's and the monitor's own values)."""
    manager, monitor = state.manager, state.monitor
    return {
        "keep_alive": manager.keep_alive,
        "keep_alive_range": list(manager.keep_alive_range),
        "ram_cleanup": monitor.ram_cleanup,
        "gpu_cleanup": monitor.gpu_cleanup,
        "ram_alert": monitor.ram_alert,
        "gpu_alert": monitor.gpu_alert,
        "monitor_interval": monitor.interval,
        "budget_bytes": manager.budget_bytes,
        "gpu_budget_bytes": manager.gpu_budget_bytes,
        "max_loaded": manager.max_loaded,
        "max_queue": state.server.max_queue,
        "default_voice": state.server.default_voice,
        "default_asr": state.server.default_asr,
    }


def apply_settings(state: ServerState, values: dict[str, Any]) -> dict[str, Any]:
    """Check every value first (ConfigError naming the first bad one), then change them all at once:
    ``keep_alive`` (idle timeout; seconds or a duration), cleanup and alert thresholds (0..1 or percent).
    Returns :func:`settings_view`. One change at a time: the API and the UI may post at once."""
    with state.settings_lock:
        return _apply_settings(state, values)


def _apply_settings(state: ServerState, values: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(values) - set(SETTINGS))
    if unknown:
        raise errors.ConfigError(f"settings: unknown {', '.join(map(shown, unknown))}; known: {', '.join(SETTINGS)}")
    for key, value in values.items():
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float, str)) or len(str(value)) > 40
        ):
            raise errors.ConfigError(f"settings: {key}: expected a number or a short text like 85% or 5m")
    thresholds = {k: v for k, v in values.items() if k != "keep_alive" and v is not None}
    server = state.server.updated(thresholds, "settings")  # ConfigError (400) on junk
    keep_alive = values.get("keep_alive")
    seconds = None
    if keep_alive is not None:
        low, high = state.manager.keep_alive_range
        try:
            seconds = parse_duration(keep_alive)
        except (ValueError, OverflowError) as exc:
            raise errors.ConfigError(f"settings: keep_alive: {exc}") from None
        if not math.isfinite(seconds) or not low <= seconds <= high:
            raise errors.ConfigError(f"settings: keep_alive: expected {low:g} to {high:g} seconds, "
                                     f"got {shown(repr(keep_alive))}")  # fmt: skip
    for key in thresholds:
        setattr(state.monitor, key, getattr(server, key))
    if seconds is not None:
        state.manager.set_keep_alive(seconds)
    state.settings = dataclasses.replace(state.settings, server=server, keep_alive=state.manager.keep_alive)
    return settings_view(state)


@router.get("/api/settings")
def get_settings(request: Request) -> dict[str, Any]:
    return settings_view(request.app.state.voxmill)


@router.post("/api/settings")
def post_settings(body: SettingsBody, request: Request) -> dict[str, Any]:
    state: ServerState = request.app.state.voxmill
    return apply_settings(state, body.model_dump(exclude_none=True))


@router.get("/api/alerts")
def alerts(request: Request, since: float = Query(0.0, ge=0, allow_inf_nan=False)) -> dict[str, Any]:
    """The alert log, oldest first (``since``: only alerts after that Unix time)."""
    entries = [a for a in list(request.app.state.voxmill.alerts) if a.get("time", 0) > since]
    return {"alerts": [{**a, "time_iso": _iso(float(a.get("time", 0)))} for a in entries]}


@router.get("/api/memory")
def memory(request: Request, minutes: float = Query(10.0, gt=0, le=24 * 60, allow_inf_nan=False)) -> dict[str, Any]:
    """The monitor's history for a chart: system RAM, this process's RSS, each GPU's memory and load."""
    state: ServerState = request.app.state.voxmill
    monitor = state.monitor
    samples = monitor.history(minutes) or [monitor.latest()]
    return {
        "interval": monitor.interval,
        "thresholds": {k: getattr(monitor, k) for k in ("ram_cleanup", "gpu_cleanup", "ram_alert", "gpu_alert")},
        "models_bytes": {"ram": state.manager.used_bytes(gpu=False), "gpu": state.manager.used_bytes(gpu=True)},
        "samples": [s.to_dict() for s in samples],
    }


# ---- /v2/repository: Triton-shaped ------------------------------------------------------------------------


@router.post("/v2/repository/index")
def triton_index(request: Request, body: TritonIndexBody | None = None) -> list[dict[str, Any]]:
    state: ServerState = request.app.state.voxmill
    rows = _rows(state)
    names = [s.name for s in state.manager.registry.all() if s.kind in SERVED_KINDS]
    names += [n for n in rows if n not in names]  # loaded models of other kinds (Silero VAD)
    index = []
    for name in sorted(names):
        row = rows.get(name)
        status = "UNAVAILABLE" if row is None else "LOADING" if row.loading else "READY"
        index.append({"name": name, "version": "1", "state": status, "reason": "unloaded" if row is None else ""})
    if body is not None and body.ready:
        index = [entry for entry in index if entry["state"] == "READY"]
    return index


@router.post("/v2/repository/models/{model_name}/load")
async def triton_load(model_name: str, request: Request, body: TritonLoadBody | None = None) -> dict[str, Any]:
    state: ServerState = request.app.state.voxmill
    parameters = body.parameters if body is not None else {}
    device = parameters.get("device")
    if device is not None and not (isinstance(device, str) and len(device) <= 20):
        raise ApiError(400, "parameters.device: expected a string like cpu or cuda:0", "invalid_device", "device")
    keep_alive = parameters.get("keep_alive")
    if isinstance(keep_alive, (dict, list, bool)) or (isinstance(keep_alive, str) and len(keep_alive) > 40):
        raise ApiError(400, "parameters.keep_alive: expected a duration or seconds", "invalid_keep_alive")
    name = await anyio.to_thread.run_sync(partial(load_model, state, model_name, device, keep_alive, None))
    request.state.model = name
    return {"name": name, "state": "READY" if name in _rows(state) else "UNAVAILABLE"}


@router.post("/v2/repository/models/{model_name}/unload")
async def triton_unload(model_name: str, request: Request, body: TritonLoadBody | None = None) -> dict[str, Any]:
    state: ServerState = request.app.state.voxmill
    name, _ = await anyio.to_thread.run_sync(unload_model, state, model_name)
    request.state.model = name
    return {"name": name, "state": "UNAVAILABLE"}
