"""``/healthz`` (the process answers) and ``/readyz`` (preloads finished: 503 until then, with why)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.api_route("/readyz", methods=["GET", "HEAD"])
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state.voxmill
    if state.ready.is_set():
        return JSONResponse({"status": "ready", "preloaded": list(state.preload)})
    failed = [state.preload_error] if state.preload_error else []
    body = {"status": "failed" if failed else "loading", "preload": list(state.preload), "errors": failed}
    return JSONResponse(body, 503, {"Retry-After": "2"})
