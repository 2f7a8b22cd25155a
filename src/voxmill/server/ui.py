"""The web UI (Gradio) at ``/ui``, in the same app and over the same model manager as the API.

Gradio costs about 2.5 s to import and 110 MiB of RSS, so the UI is built on its first request, not at
start-up: a server nobody opens the UI of never pays for it. Until then ``/ui`` is a small ASGI app
that, on the first request, asks a task of the server's lifespan to build the Blocks (on a thread) and
to start Gradio's own lifespan (its queue); that task also stops it at shutdown, so Gradio's start
and stop run in one task, as they do when Gradio is mounted eagerly. Requests then go to Gradio's app.

The tabs live in ``ui_blocks`` / ``ui_models_tab``; the Models tab's data and actions in ``ui_models``;
who may act in ``ui_access``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from voxmill import errors
from voxmill.server.problems import error_body
from voxmill.server.state import ServerState

__all__ = ["UI_PATH", "LazyUI", "mount_ui"]

log = logging.getLogger("voxmill.server")

UI_PATH = "/ui"
BUILD_TIMEOUT = 300.0  # seconds a request waits for the first build (a busy 2-core machine: ~5 s)


def mount_ui(app: FastAPI, state: ServerState) -> None:
    """Mount the Gradio UI at ``/ui`` (built on its first request); MissingExtraError when Gradio is not
    installed."""
    if importlib.util.find_spec("gradio") is None:
        raise errors.MissingExtraError("gradio", "server")
    ui = LazyUI(state)
    app.mount(UI_PATH, ui)
    outer = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(parent: Any) -> AsyncIterator[Any]:
        async with outer(parent) as inner_state, ui.running():
            yield inner_state

    app.router.lifespan_context = lifespan


def build_gradio(state: ServerState) -> tuple[FastAPI, ASGIApp]:
    """Build the Blocks and Gradio's app, mounted at ``/ui`` on a host app of its own (blocking).

    Returns (host, Gradio's app): entering ``host.router.lifespan_context`` starts Gradio's queue; requests
    for ``/ui`` go to Gradio's app with the scope a mount at ``/ui`` gives them.
    """
    import gradio as gr

    from voxmill.server.ui_blocks import build_blocks, theme

    host = FastAPI()
    blocks = build_blocks(state)
    # Gradio checks that a file a client names in an event's input was uploaded (else any path on the
    # server, /etc/passwd included, is copied into its cache and served back) only once the Blocks "has
    # launched", which mount_gradio_app never sets: without this, the Transcribe tab read any file.
    blocks.has_launched = True
    gr.mount_gradio_app(
        host,
        blocks,
        path=UI_PATH,
        ssr_mode=False,  # server-side rendering needs a Node server beside this one
        footer_links=["gradio", "settings"],
        max_file_size=state.server.max_body_bytes,
        show_error=False,  # handlers report their own one-line errors; anything else stays in the log
        theme=theme(),
    )
    mounted = next(route.app for route in host.routes if isinstance(route, Mount) and route.path == UI_PATH)
    return host, mounted


class LazyUI:
    """The ASGI app at ``/ui``: Gradio's, once the first request has had it built."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.gradio: ASGIApp | None = None
        self.failure: str | None = None
        self._wanted: anyio.Event | None = None
        self._settled: anyio.Event | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the server's lifespan: build and run Gradio when first wanted, stop it at the end."""
        wanted, settled, stop = anyio.Event(), anyio.Event(), anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._serve, wanted, settled, stop)
            self._wanted, self._settled = wanted, settled
            try:
                yield
            finally:
                stop.set()
                wanted.set()  # wakes _serve if nobody ever opened the UI: it then just ends

    async def _serve(self, wanted: anyio.Event, settled: anyio.Event, stop: anyio.Event) -> None:
        await wanted.wait()
        if stop.is_set():
            return
        try:
            host, gradio = await anyio.to_thread.run_sync(build_gradio, self.state)
            async with host.router.lifespan_context(host):
                self.gradio = gradio
                settled.set()
                await stop.wait()
        except Exception as exc:  # the API keeps serving; /ui answers why it cannot
            log.exception("the web UI could not start")
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self.failure = f"the web UI could not start: {first}"
        finally:
            self.gradio = None
            settled.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.gradio is None and self.failure is None:
            if self._wanted is None or self._settled is None:
                await self._refuse(scope, send, "the web UI starts with the server's lifespan; it is not running")
                return
            self._wanted.set()
            with anyio.move_on_after(BUILD_TIMEOUT):
                await self._settled.wait()
        gradio = self.gradio
        if gradio is None:
            await self._refuse(scope, send, self.failure or "the web UI is still starting; retry shortly")
            return
        await gradio(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, message: str) -> None:
        if scope["type"] != "http":
            return  # a websocket that is not accepted is closed by the server
        from fastapi.responses import JSONResponse

        response = JSONResponse(error_body(503, message, "ui_unavailable"), 503, {"Retry-After": "5"})
        await response(scope, _no_body, send)


async def _no_body() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}
