"""What ``voxmill serve`` runs: uvicorn imports ``voxmill.server.main:app_from_environment`` as a
factory (the CLI and the server are separate interfaces and do not import each other). The CLI has
already resolved and checked every setting; it hands them over as JSON in ``VOXMILL_SERVE_SETTINGS``.
``--no-http`` runs :func:`wyoming_from_environment` instead: the Wyoming listener alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from fastapi import FastAPI

from voxmill import errors
from voxmill.config import SERVE_SETTINGS_ENV, Settings
from voxmill.server.app import build_manager, build_state, create_app, serving
from voxmill.server.state import ServerState

__all__ = ["SETTINGS_ENV", "app_from_environment", "wyoming_from_environment"]

SETTINGS_ENV = SERVE_SETTINGS_ENV


def app_from_environment() -> FastAPI:
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise errors.ConfigError(f"{SETTINGS_ENV} is not set: start the server with `voxmill serve`")
    data: dict[str, Any] = json.loads(text)
    settings = Settings.from_dict(data["settings"], SETTINGS_ENV)
    return create_app(settings, build_manager(settings), preload=data.get("preload", []), close_manager=True)


def wyoming_from_environment() -> None:
    """``voxmill serve --wyoming URI --no-http``: the Wyoming listener alone (no HTTP, no web UI), over the
    same state as the full server, until SIGTERM or SIGINT (then requests in flight get
    ``server.shutdown_timeout`` to give their leases back, and it returns)."""
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise errors.ConfigError(f"{SETTINGS_ENV} is not set: start the server with `voxmill serve`")
    data: dict[str, Any] = json.loads(text)
    settings = Settings.from_dict(data["settings"], SETTINGS_ENV)
    if not settings.server.wyoming:
        raise errors.ConfigError("--no-http needs --wyoming URI (or server.wyoming): there would be nothing to serve")
    preload = data.get("preload", [])
    manager = build_manager(settings)
    for profile in preload:
        if profile not in manager.profiles:
            manager.close()
            raise errors.ConfigError(f"--preload {profile}: unknown profile; known: {', '.join(manager.profiles)}")
    asyncio.run(_serve_wyoming(build_state(settings, manager, preload)))


async def _serve_wyoming(state: ServerState) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on Windows' loop
            loop.add_signal_handler(signum, stop.set)
    async with serving(state, close_manager=True):
        await stop.wait()
