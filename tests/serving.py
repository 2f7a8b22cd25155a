"""A real voxmill server on loopback for tests: uvicorn in a thread, on a free port."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

pytest.importorskip("fastapi")

import uvicorn

from voxmill.config import ServerSettings, Settings
from voxmill.models import ModelManager
from voxmill.server import build_manager, create_app

__all__ = ["make_settings", "running", "served"]


def make_settings(voices_dir: Path | None = None, **server: Any) -> Settings:
    """Settings for a test server: quiet, the given ``server:`` values (e.g. max_queue=1)."""
    settings = Settings(quiet=True, server=ServerSettings().updated(server, "test"))
    if voices_dir is not None:
        settings = Settings(quiet=True, voices_dir=voices_dir, server=settings.server)
    return settings


@contextmanager
def running(app: Any, timeout: float = 60.0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) for the block; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextmanager
def served(
    settings: Settings | None = None, manager: ModelManager | None = None, **app_kw: Any
) -> Iterator[tuple[str, Any]]:
    """A fresh app (UI off unless ``ui=True``) over ``manager`` (default: a new one, closed after):
    yields (base URL, app)."""
    settings = settings or make_settings()
    own = manager is None
    manager = manager or build_manager(settings)
    app_kw.setdefault("ui", False)
    app = create_app(settings, manager, **app_kw)
    try:
        with running(app) as url:
            yield url, app
    finally:
        if own:
            manager.close()


@contextmanager
def wyoming_served(**server: Any) -> Iterator[tuple[Any, str, int]]:
    """A fresh server with Wyoming on a free loopback port (beside HTTP): yields (state, host, port)."""
    with served(make_settings(wyoming="tcp://127.0.0.1:0", **server)) as (_, app):
        state = app.state.voxmill
        match = re.fullmatch(r"tcp://([^:]+):(\d+)", state.wyoming_address)
        assert match, state.wyoming_address
        yield state, match.group(1), int(match.group(2))


T = TypeVar("T")


def run_bounded(coro: Callable[[], Awaitable[T]], timeout: float) -> T:
    """``coro()`` run to its end in a fresh event loop, TimeoutError after ``timeout`` seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro(), timeout)

    return asyncio.run(bounded())
