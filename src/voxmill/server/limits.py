"""Request body limit: bodies over ``max_bytes`` get 413 naming the limit, whether they declare their
length (refused before a byte is read) or stream it chunked (refused when the count passes the limit).
A pure ASGI middleware, because a body read through Starlette is already buffered whole."""

from __future__ import annotations

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxmill.server.problems import ApiError

__all__ = ["BODY_IDLE_SECONDS", "BodyLimit", "Stalled", "TooLarge"]

# A body that stops arriving for this long is given up (408): uvicorn has no body read timeout, and a
# client that sends half an upload and goes quiet would hold its connection (and the route) forever.
BODY_IDLE_SECONDS = 30.0


class TooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit; an HTTPException, so that a route
    (or FastAPI's body parsing) that lets it through is answered 413 by the app's handler."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than the limit of {limit} bytes (server.max_body_bytes)")


class Stalled(HTTPException):
    """Raised from ``receive`` when the body stops arriving for ``BODY_IDLE_SECONDS``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body stopped arriving for {seconds:g} s")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, idle_seconds: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0 or length > self.max_bytes:
                await self._refuse(scope, receive, send, length)
                return
        seen = 0
        started = False
        body_done = False
        idle = BODY_IDLE_SECONDS if self.idle_seconds is None else self.idle_seconds

        async def counted() -> Message:
            nonlocal seen, body_done
            if body_done:  # later receives wait for a disconnect (a streamed response): not timed
                return await receive()
            try:
                with anyio.fail_after(idle):
                    message = await receive()
            except TimeoutError:
                raise Stalled(idle) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise TooLarge(self.max_bytes)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except TooLarge:
            if not started:
                await self._refuse(scope, receive, send, seen)
        except Stalled as exc:
            if not started:
                await self._refuse(scope, receive, send, seen, status=408, message=str(exc.detail))

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, length: int, status: int | None = None, message: str = ""
    ) -> None:
        if status is None and length < 0:
            status, message = 400, "bad Content-Length header"
        elif status is None:
            status = 413
            message = f"request body larger than the limit of {self.max_bytes} bytes (server.max_body_bytes)"
        code = {413: "body_too_large", 408: "body_stalled"}.get(status, "bad_request")
        await ApiError(status, message, code).response()(scope, receive, send)
