"""``create_app(settings, manager) -> FastAPI``: the OpenAI audio API, model administration, metrics,
health, and the Gradio UI at ``/ui``, in one app over one model manager (uvicorn runs it).

One router module per API family; each route parses, leases through the manager, runs the model on
the scheduler's workers (never on the event loop), and renders.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Sequence

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from voxmill import errors
from voxmill.config import Settings
from voxmill.engine.threads import plan as thread_plan
from voxmill.models import MemoryMonitor, ModelManager
from voxmill.server.auth import read_token
from voxmill.server.limits import BodyLimit
from voxmill.server.problems import CutShort, install_handlers
from voxmill.server.scheduler import Scheduler
from voxmill.server.state import ServerState

__all__ = ["build_manager", "build_state", "create_app", "serving"]

log = logging.getLogger("voxmill.server")


def build_manager(settings: Settings) -> ModelManager:
    """The server's one model manager (see ``ModelManager.from_settings``); each model session runs with
    the scheduler's threads per worker."""
    threads = thread_plan(settings.workers, "auto", backend="thread").threads_per_worker
    return ModelManager.from_settings(settings, threads)


def create_app(
    settings: Settings,
    manager: ModelManager | None = None,
    preload: Sequence[str] = (),
    ui: bool | None = None,
    close_manager: bool = False,
) -> FastAPI:
    """The server app. ``manager`` (default: :func:`build_manager`) is not closed with the app: the caller
    owns it. ``preload``: profiles loaded and pinned at start (``/readyz`` says ready once done);
    ``ui``: mount the Gradio UI at ``/ui`` (default: ``server.ui``); ``close_manager``: close it on shutdown."""
    for profile in preload:
        if manager is not None and profile not in manager.profiles:
            raise errors.ConfigError(f"--preload {profile}: unknown profile; known: {', '.join(manager.profiles)}")
    manager = manager or build_manager(settings)
    server = settings.server
    state = build_state(settings, manager, preload)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with serving(state, close_manager):
            yield

    app = FastAPI(title="voxmill", version=_version(), lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.voxmill = state
    install_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=server.max_body_bytes)
    app.add_middleware(CutShort)  # outside the body limit, inside the metrics: a cut request counts as 503

    from voxmill.server import admin, catalog, health, metrics, speech, transcription

    metrics.install_metrics(app, state)
    for module in (health, catalog, speech, transcription, admin):
        app.include_router(module.router)
    if server.ui if ui is None else ui:
        from voxmill.server.ui import mount_ui

        mount_ui(app, state)
    else:

        @app.get("/ui", include_in_schema=False)
        async def _no_ui() -> JSONResponse:
            return JSONResponse({"error": {"message": "the web UI is off (server.ui: false)", "type": "not_found_error",
                                           "code": "ui_off", "param": None}}, 404)  # fmt: skip

    return app


def build_state(settings: Settings, manager: ModelManager, preload: Sequence[str] = ()) -> ServerState:
    """The state every front end shares: the manager, a scheduler (``max_queue`` per kind), the memory
    monitor (not started yet), the admin token and the profiles to preload."""
    server = settings.server
    plan = thread_plan(settings.workers, "auto", backend="thread")
    scheduler = Scheduler(plan, server.max_queue)
    monitor = MemoryMonitor(
        interval=server.monitor_interval,
        ram_alert=server.ram_alert,
        gpu_alert=server.gpu_alert,
        ram_cleanup=server.ram_cleanup,
        gpu_cleanup=server.gpu_cleanup,
        manager=manager,
    )
    state = ServerState(settings, manager, scheduler, monitor, read_token(server.admin_token_file), tuple(preload))
    manager.on(
        "alert",
        lambda _event, info: state.alert(str(info.get("message", "")), source="monitor", kind=info.get("kind")),
    )
    return state


@contextlib.asynccontextmanager
async def serving(state: ServerState, close_manager: bool = False) -> AsyncIterator[None]:
    """Run what the server runs beside its front ends, for the ``async with`` body: the Wyoming listener
    (when ``server.wyoming`` is set), the memory monitor and the preload thread; on exit the Wyoming
    requests give back their leases and places, then the scheduler and monitor stop (and the manager
    closes with ``close_manager``)."""
    server, scheduler, monitor = state.server, state.scheduler, state.monitor
    wyoming = None
    if server.wyoming:
        from voxmill.server.wyoming import start_wyoming

        try:  # before the preload thread: one registry scan at a time; describe is ready when clients come
            wyoming = await start_wyoming(state, server.wyoming)
        except BaseException:
            scheduler.close()
            raise
        state.wyoming_address = wyoming.address
    monitor.start()
    threading.Thread(target=_preload, args=(state,), name="voxmill-preload", daemon=True).start()
    try:
        yield
    finally:
        if wyoming is not None:  # its requests give back their leases and places before the workers stop
            await wyoming.stop(server.shutdown_timeout)
        scheduler.close()
        monitor.stop()
        if close_manager:
            state.manager.close()


def _preload(state: ServerState) -> None:
    try:
        # Discover the models now, off the event loop: the first request would otherwise scan every
        # installed package from inside an async route.
        state.manager.registry.all()
        for profile in state.preload:
            names = state.manager.preload(profile)
            log.info("preloaded profile %s: %s", profile, ", ".join(names))
    except Exception as exc:  # the server still serves; /readyz reports why it is not ready
        state.preload_error = f"preload failed: {exc}"
        state.alert(state.preload_error, source="preload")
        log.error("preload failed: %s", exc)
        return
    state.ready.set()


def _version() -> str:
    from voxmill import __version__

    return __version__
