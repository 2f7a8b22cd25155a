"""Bearer-token checks: admin routes always, the audio API too with ``auth: all``.

The token is ``VOXMILL_ADMIN_TOKEN``, else the first line of ``server.admin_token_file``. Without one,
admin routes are served to loopback clients only (a server bound to 0.0.0.0 without a token cannot be
administered from another machine). Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path

from fastapi import Request

from voxmill import errors
from voxmill.server.problems import ApiError

__all__ = ["is_local_client", "read_token", "require_admin", "require_api"]

TOKEN_ENV = "VOXMILL_ADMIN_TOKEN"
MAX_TOKEN_FILE = 4096  # bytes read of the token file: a token is one short line


def read_token(token_file: Path | None) -> str | None:
    """The configured admin token, or None. A token file that cannot be read is a ConfigError."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    if token_file is None:
        return None
    try:
        if not token_file.is_file():  # /dev/zero would be read forever, a FIFO would block the start
            raise errors.ConfigError(f"server.admin_token_file {token_file}: not a regular file")
        with token_file.open("rb") as handle:
            head = handle.read(MAX_TOKEN_FILE)
        lines = head.decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.ConfigError(f"server.admin_token_file {token_file}: cannot read: {exc}") from None
    token = lines[0].strip() if lines else ""
    if len(head) == MAX_TOKEN_FILE and len(lines) < 2:
        raise errors.ConfigError(f"server.admin_token_file {token_file}: the token line is over {MAX_TOKEN_FILE} bytes")
    if not token:
        raise errors.ConfigError(f"server.admin_token_file {token_file}: empty")
    return token


PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def is_local_client(host: str, headers: Mapping[str, str] | None) -> bool:
    """Whether a client with no token may administer: its address is loopback and no proxy forwarded it
    (nginx on the same machine connects from 127.0.0.1 for clients anywhere: those need the token)."""
    if headers is not None and any(name in headers for name in PROXY_HEADERS):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback(request: Request) -> bool:
    return is_local_client(request.client.host if request.client else "", request.headers)


def _check(request: Request, token: str | None, what: str) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if token is None:
        if _loopback(request):
            return
        raise ApiError(403, f"{what} is served to loopback clients only: set {TOKEN_ENV} to allow others",
                       "forbidden")  # fmt: skip
    # Starlette decodes headers as latin-1: encoding back gives the bytes the client sent, so a UTF-8
    # token matches; both sides are bytes, and compare_digest takes time independent of where they differ.
    sent = given.strip().encode("latin-1", "replace")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent, token.encode()):
        raise ApiError(401, f"{what} needs 'Authorization: Bearer <token>'", "unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip


def require_admin(request: Request) -> None:
    """FastAPI dependency of every admin route."""
    _check(request, request.app.state.voxmill.token, "model administration")


def require_api(request: Request) -> None:
    """FastAPI dependency of the audio API: checks the token only with ``auth: all``."""
    state = request.app.state.voxmill
    if state.server.auth == "all":
        _check(request, state.token, "the API")
