"""(stub: being written)"""

from __future__ import annotations

from fastapi import FastAPI

from voxmill.server.state import ServerState

__all__ = ["mount_ui"]


def mount_ui(app: FastAPI, state: ServerState) -> None:
    pass
