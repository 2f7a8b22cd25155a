"""``voxmill serve``: parse, build the app (``voxmill.server.create_app``), run it under uvicorn."""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import math
import os
from typing import Annotated

import typer

from voxmill import errors
from voxmill.cli.common import WorkersFlag, err_console, state
from voxmill.config import SERVE_SETTINGS_ENV, parse_whole_or_auto

__all__ = ["serve"]

HostFlag = Annotated[
    str | None, typer.Option("--host", help="Address to listen on (default 127.0.0.1: this machine only).")
]
PortFlag = Annotated[int | None, typer.Option("--port", help="Port (default 8000; 0: any free port).")]
PreloadFlag = Annotated[
    list[str] | None,
    typer.Option("--preload", help="Model profile (profiles: in voxmill.yaml) to load and pin at start; repeatable."),
]
QueueFlag = Annotated[
    int | None,
    typer.Option("--max-queue", help="Requests per model kind waiting or running; more are answered 503 (default 16)."),
]
AuthFlag = Annotated[
    str | None, typer.Option("--auth", help="'admin': the token guards model administration; 'all': the audio API too.")
]
WyomingFlag = Annotated[
    str | None,
    typer.Option("--wyoming", metavar="URI",
                 help="Also serve the Wyoming protocol (Home Assistant) at tcp://HOST:PORT or unix:///PATH."),
]  # fmt: skip
HttpFlag = Annotated[
    bool | None,
    typer.Option("--http/--no-http",
                 help="Serve HTTP (API, /metrics, web UI; default: on, or server.http); --no-http with --wyoming: "
                      "the Wyoming protocol alone."),
]  # fmt: skip
UiFlag = Annotated[bool | None, typer.Option("--ui/--no-ui", help="Serve the web UI at /ui (default: on).")]


def serve(
    ctx: typer.Context,
    host: HostFlag = None,
    port: PortFlag = None,
    preload: PreloadFlag = None,
    max_queue: QueueFlag = None,
    workers: WorkersFlag = None,
    auth: AuthFlag = None,
    ui: UiFlag = None,
    wyoming: WyomingFlag = None,
    http: HttpFlag = None,
) -> None:
    """Serve voice models: the OpenAI audio API, model administration, /metrics and a web UI at /ui.

    Admin routes need 'Authorization: Bearer <token>' (VOXMILL_ADMIN_TOKEN or server.admin_token_file);
    without a token they answer loopback clients only. Settings: the server: block of voxmill.yaml and
    VOXMILL_SERVER_<KEY> variables; these flags win.
    """
    settings = state(ctx).settings
    server = settings.server.updated({"host": host, "port": port, "max_queue": max_queue, "auth": auth, "ui": ui,
                                     "wyoming": wyoming, "http": http})  # fmt: skip
    http = server.http
    try:
        chosen = settings.workers if workers is None else parse_whole_or_auto(workers)
    except ValueError as exc:
        raise errors.ConfigError(f"--workers: {exc}") from None
    settings = dataclasses.replace(settings, workers=chosen, server=server)
    for profile in preload or []:
        if profile not in settings.profiles:
            known = ", ".join(sorted(settings.profiles)) or "none configured (profiles: in voxmill.yaml)"
            raise errors.ConfigError(f"--preload {profile}: unknown profile; known: {known}")
    if not http and not server.wyoming:
        raise errors.ConfigError(
            "--no-http (server.http: false) needs --wyoming URI (or server.wyoming): there would be nothing to serve"
        )
    try:
        import uvicorn
    except ImportError:
        raise errors.MissingExtraError("uvicorn", "server") from None
    shown_host = f"[{server.host}]" if ":" in server.host else server.host
    if http:
        err_console.print(f"voxmill serve: http://{shown_host}:{server.port} (web UI at /ui, metrics at /metrics)")
    if server.wyoming:
        err_console.print(f"voxmill serve: Wyoming at {server.wyoming} (no authentication: trusted networks only)")
    logging.basicConfig(level=logging.DEBUG if settings.debug else logging.INFO)
    if not settings.debug:  # faster-whisper logs every request's duration at INFO
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    # uvicorn builds the app from an import string (a factory): the CLI hands the server its resolved
    # settings as data and never imports it (cli and server are separate interfaces).
    os.environ[SERVE_SETTINGS_ENV] = json.dumps({"settings": settings.to_dict(), "preload": list(preload or [])})
    if not http:  # the Wyoming listener alone, resolved by name as uvicorn resolves FACTORY
        module, _, function = WYOMING_ONLY.partition(":")
        getattr(importlib.import_module(module), function)()
        return
    # A bounded grace: uvicorn otherwise waits for every connection to end, and a client that trickles
    # an upload a byte a second (or a stream nobody reads) would hold a SIGTERM or Ctrl+C off for ever.
    uvicorn.run(FACTORY, factory=True, host=server.host, port=server.port,
                log_level="debug" if settings.debug else "warning",
                timeout_graceful_shutdown=max(1, math.ceil(server.shutdown_timeout)))  # fmt: skip


# Where uvicorn finds the app (voxmill/server/main.py).
FACTORY = "voxmill.server.main:app_from_environment"
# What --no-http runs instead (until SIGTERM or SIGINT).
WYOMING_ONLY = "voxmill.server.main:wyoming_from_environment"
