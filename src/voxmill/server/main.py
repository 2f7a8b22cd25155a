"""The app ``voxmill serve`` runs: uvicorn imports ``voxmill.server.main:app_from_environment`` as a
factory (the CLI and the server are separate interfaces and do not import each other). The CLI has
already resolved and checked every setting; it hands them over as JSON in ``VOXMILL_SERVE_SETTINGS``."""

from __future__ import annotations

import json
import os
from typing import Any

from fastapi import FastAPI

from voxmill import errors
from voxmill.config import SERVE_SETTINGS_ENV, Settings
from voxmill.server.app import build_manager, create_app

__all__ = ["SETTINGS_ENV", "app_from_environment"]

SETTINGS_ENV = SERVE_SETTINGS_ENV


def app_from_environment() -> FastAPI:
    text = os.environ.get(SETTINGS_ENV)
    if not text:
        raise errors.ConfigError(f"{SETTINGS_ENV} is not set: start the server with `voxmill serve`")
    data: dict[str, Any] = json.loads(text)
    settings = Settings.from_dict(data["settings"], SETTINGS_ENV)
    return create_app(settings, build_manager(settings), preload=data.get("preload", []), close_manager=True)
