"""Who may do what from the web UI, and how a failed action is shown (one line, never a traceback).

The UI calls the model manager directly, not through the HTTP admin routes, so it checks the same
rule itself: with an admin token configured, model actions need that token (typed into the UI's token
box, compared in constant time); without one, only loopback clients may act. With ``auth: all`` the
same holds for speaking and transcribing.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from voxmill import errors
from voxmill.server.auth import TOKEN_ENV, is_local_client
from voxmill.server.problems import ApiError
from voxmill.server.scheduler import Busy
from voxmill.server.state import ServerState

__all__ = ["Refused", "attempt", "check_admin", "check_api", "client_host"]

log = logging.getLogger("voxmill.server")

T = TypeVar("T")


class Refused(Exception):
    """This UI client may not do that; the message says why (shown, never raised to Gradio)."""


def client_host(request: Any) -> str:
    """The client's address of a ``gr.Request`` (empty when Gradio gives none)."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "")


def _loopback(request: Any) -> bool:
    headers = getattr(request, "headers", None)
    return is_local_client(client_host(request), {str(k).lower(): v for k, v in dict(headers or {}).items()})


def _check(state: ServerState, request: Any, token: str | None, what: str) -> None:
    if state.token is None:
        if not _loopback(request):
            raise Refused(f"{what} is served to loopback clients only: set {TOKEN_ENV} to allow others")
        return
    given = token if isinstance(token, str) else ""  # a hostile client may send any JSON for the box
    if not hmac.compare_digest(given.strip().encode(), state.token.encode()):
        raise Refused(f"{what} needs the admin token: type it into the admin token box")


def check_admin(state: ServerState, request: Any, token: str | None) -> None:
    """Refused unless this client may load, unload, pin models or change settings."""
    _check(state, request, token, "model administration")


def check_api(state: ServerState, request: Any, token: str | None) -> None:
    """Refused unless this client may speak or transcribe (only checked with ``auth: all``)."""
    if state.server.auth == "all":
        _check(state, request, token, "the API")


def attempt(action: Callable[[], T], warn: Callable[[str], Any] | None = None) -> tuple[T | None, str | None]:
    """Run ``action``; ``(result, None)``, or ``(None, message)`` with the one-line reason it failed.

    ``warn`` (``gr.Warning``) also shows the message as a toast. Unexpected errors are logged with their
    traceback on the server and shown as one line: the page never carries a traceback.
    """
    try:
        return action(), None
    except Refused as exc:
        message = str(exc)
    except ApiError as exc:
        message = exc.message
    except (errors.VoxmillError, Busy) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    except Exception as exc:  # a bug or a library's own error: one line here, the traceback in the log
        log.exception("web UI action failed")
        first = str(exc).splitlines()[0][:300] if str(exc) else ""
        message = f"internal error ({type(exc).__name__}){': ' + first if first else ''}"
    if warn is not None:
        warn(message)
    return None, message
