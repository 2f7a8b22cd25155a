"""Helpers shared by CLI commands: consoles and the per-invocation state."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import typer
from rich.console import Console

from voxmill.config import Settings
from voxmill.engine import parse_workers

# Piped output is not cut to 80 columns: a table that lands in a file should keep whole paths.
# Markup and emoji codes are off by default: ids, texts, paths and messages are user data, and a
# `[red]` or `:smile:` in them must print as written. A command that styles its own words asks for
# markup (or builds rich Text) and escapes what it interpolates.
console = Console(width=None if sys.stdout.isatty() else 240, markup=False, emoji=False)
# Errors go to stderr, never wrapped: one line per failed file is the contract.
err_console = Console(stderr=True, soft_wrap=True, markup=False, emoji=False)


@dataclass
class State:
    """What the root callback hands every command through ``ctx.obj``."""

    settings: Settings


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    if not isinstance(obj, State):
        raise RuntimeError("voxmill CLI state missing: commands must run under the root app")
    return obj


BACKEND_HELP = "Where items run: process (default), thread, or ray (a local Ray, or the cluster at --ray-address)."
RAY_ADDRESS_HELP = (
    "With --backend ray: the cluster to join, 'auto' (the one `ray start` made on this machine) or HOST:PORT; "
    "without it a local Ray starts with this machine's cores. Every input and output path must be visible "
    "on every node (a shared filesystem), and each node needs voxmill installed."
)


def backend_value(backend: str, ray_address: str | None) -> str:
    """``--backend``, where ``--ray-address`` implies ray: a cluster address means nothing elsewhere."""
    return "ray" if ray_address else backend


def workers_value(ctx: typer.Context, value: str) -> int | str:
    """``--workers``: a positive whole number, or 'auto' (then the settings' value: voxmill.yaml,
    VOXMILL_WORKERS). Anything else is a ConfigError naming the option (exit 2), before any work."""
    workers = parse_workers(value)
    return state(ctx).settings.workers if workers == "auto" else workers
