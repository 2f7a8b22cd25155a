"""Every error a client sees is JSON in OpenAI's shape, ``{"error": {"message", "type", "code", "param"}}``.

The routes raise :class:`ApiError` (or let a :class:`~voxmill.errors.VoxmillError` through, mapped by
its reason code); request validation, unknown routes and anything unexpected are turned into the same
shape here, so no response ever carries a traceback. An unexpected exception is logged and answered
500 with no detail: the fuzz tests keep that path unused.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxmill import errors
from voxmill.errors import Reason

__all__ = ["ApiError", "CutShort", "error_body", "install_handlers", "status_for"]

log = logging.getLogger("voxmill.server")

# The HTTP status of a voxmill error, by its reason code (never by its message).
_STATUS = {
    Reason.CONFIG: 400,
    Reason.DATASET: 400,
    Reason.DECODE: 400,
    Reason.EMPTY: 400,
    Reason.TRUNCATED: 400,
    Reason.NON_FINITE: 400,
    Reason.MISSING: 404,
    Reason.MISSING_EXTRA: 501,
    Reason.TIMEOUT: 504,
}
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          405: "invalid_request_error", 409: "conflict_error", 413: "invalid_request_error",
          415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
          503: "server_busy", 501: "not_implemented"}  # fmt: skip


class ApiError(Exception):
    """An HTTP error for the client: ``status``, a one-line ``message``, a machine ``code``; ``param`` names
    the request field at fault; ``headers`` (``Retry-After`` on 503)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.status, self.message, self.code, self.param), self.status, self.headers)


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


def status_for(exc: errors.VoxmillError) -> int:
    """The HTTP status of a voxmill error raised while serving a request."""
    if isinstance(exc, errors.ModelNotFound):
        return 404
    if isinstance(exc, errors.ModelTooLarge):
        # Held by models in use: a retry later may fit (503). Bigger than the whole budget: no retry helps.
        return 503 if exc.in_use else 507
    if isinstance(exc, errors.ModelLoadError):
        return 422  # the model exists but its files are unusable
    return _STATUS.get(exc.code, 400 if isinstance(exc, errors.AudioError) else 500)


def from_voxmill(exc: errors.VoxmillError) -> ApiError:
    status = status_for(exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    return ApiError(status, str(exc), str(exc.code), headers=headers)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    problems = []
    param = None
    for item in exc.errors()[:5]:
        where = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path", "form")]
        param = param or (".".join(where) or None)
        text = str(item.get("msg", "invalid value"))
        problems.append(f"{'.'.join(where) or 'request'}: {text}"[:300])
    return "; ".join(problems) or "invalid request", param


def install_handlers(app: FastAPI) -> None:
    """JSON errors for ApiError, voxmill errors, validation, unknown routes, and anything else."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(errors.VoxmillError)
    async def _voxmill(_: Request, exc: errors.VoxmillError) -> JSONResponse:
        return from_voxmill(exc).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return ApiError(400, message, "invalid_request", param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return ApiError(exc.status_code, message, headers=dict(exc.headers or {})).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        return ApiError(500, "internal error (logged on the server)", "internal").response()


class CutShort:
    """Pure ASGI middleware: a request still in flight when the server's shutdown grace ends is cancelled
    (``uvicorn``'s ``timeout_graceful_shutdown``), and uvicorn would answer it 500. Before its response
    has started it is answered 503 with Retry-After instead: the client may retry once a server is up."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            if started:
                raise  # a response under way cannot change its status: the connection is closed
            error = ApiError(503, "the server is shutting down; retry shortly", "shutting_down",
                             headers={"Retry-After": "5", "Connection": "close"})  # fmt: skip
            await error.response()(scope, receive, send)
