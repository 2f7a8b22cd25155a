"""``voxmill serve``: voice models as a service over one model manager.

``create_app(settings, manager) -> FastAPI`` (uvicorn runs it): the OpenAI audio API (``/v1/audio/speech``,
``/v1/audio/transcriptions``, ``/v1/models``), model administration (``/api/ps``, ``/api/load``,
``/api/unload``, profiles; Triton's ``/v2/repository``), ``/metrics``, ``/healthz``, ``/readyz``, and the
Gradio UI at ``/ui``. Needs the ``server`` extra (FastAPI, uvicorn, Gradio, prometheus-client).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voxmill import errors

if TYPE_CHECKING:
    from voxmill.server.app import build_manager, create_app

__all__ = ["build_manager", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        try:
            import fastapi  # noqa: F401
        except ImportError:
            raise errors.MissingExtraError("fastapi", "server") from None
        from voxmill.server import app

        return getattr(app, name)
    raise AttributeError(name)
