"""(stub: being written)"""

from __future__ import annotations

from fastapi import FastAPI

from voxmill.server.state import ServerState

__all__ = ["install_metrics"]


def install_metrics(app: FastAPI, state: ServerState) -> None:
    pass
