"""Helpers shared by CLI commands: consoles and the per-invocation state."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import typer
from rich.console import Console

from voxmill.config import Settings

# Piped output is not cut to 80 columns: a table that lands in a file should keep whole paths.
console = Console(width=None if sys.stdout.isatty() else 240)
# Errors go to stderr, never wrapped: one line per failed file is the contract.
err_console = Console(stderr=True, soft_wrap=True)


@dataclass
class State:
    """What the root callback hands every command through ``ctx.obj``."""

    settings: Settings


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        raise RuntimeError("voxmill CLI state missing: commands must run under the root app")
    return obj


def workers_value(ctx: typer.Context, value: str) -> int | str:
    """``--workers``: a number, or 'auto' (then the settings' value: voxmill.yaml, VOXMILL_WORKERS)."""
    if value.isdigit():
        return int(value)
    return state(ctx).settings.workers if value == "auto" else value
