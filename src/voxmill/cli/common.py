"""Helpers shared by CLI commands: consoles and the per-invocation state."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Console

from voxmill.config import Settings
from voxmill.engine import RunOptions, ThreadPlan

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


BACKEND_HELP = (
    "Where items run: process, thread, serial, or ray (a local Ray, or the cluster at --ray-address); "
    "default: the settings' backend ('auto': the command's best)."
)
RAY_ADDRESS_HELP = (
    "With --backend ray: the cluster to join, 'auto' (the one `ray start` made on this machine) or HOST:PORT; "
    "without it a local Ray starts with this machine's cores. Every input and output path must be visible "
    "on every node (a shared filesystem), and each node needs voxmill installed."
)

# The run flags every batch command takes, defined once (typer reads them from the annotations).
WorkersFlag = Annotated[
    str | None,
    typer.Option(
        "--workers", help="Workers: a whole number or 'auto' (default: settings' workers; auto = usable cores)."
    ),
]
BackendFlag = Annotated[str | None, typer.Option("--backend", help=BACKEND_HELP)]
RayAddressFlag = Annotated[str | None, typer.Option("--ray-address", help=RAY_ADDRESS_HELP)]
ThreadsFlag = Annotated[
    str | None,
    typer.Option(
        "--threads-per-worker", help="Native threads per worker (onnxruntime, BLAS); 'auto' = cores / workers."
    ),
]
TimeoutFlag = Annotated[
    float | None,
    typer.Option("--timeout", help="Fail an item that runs longer than this many seconds (default: no limit)."),
]


def run_options(
    ctx: typer.Context,
    workers: str | None = None,
    backend: str | None = None,
    ray_address: str | None = None,
    threads_per_worker: str | None = None,
    timeout: float | None = None,
) -> RunOptions:
    """The run options of a command: Settings (voxmill.yaml, VOXMILL_*: workers, backend, budget,
    device, quiet) under the flags that were given. A bad value is a ConfigError naming the option
    (exit 2), before any work. ``--ray-address`` implies ``--backend ray``."""
    if ray_address and backend is None:
        backend = "ray"
    return RunOptions.from_settings(
        state(ctx).settings,
        workers=workers,
        backend=backend,
        address=ray_address,
        threads_per_worker=threads_per_worker,
        timeout=timeout,
    )


def print_plan(plan: ThreadPlan | None) -> None:
    """The plan a run used ("ran on 2 process workers x 1 thread"), on stderr: every batch command says it."""
    if plan is not None:
        err_console.print(f"ran on {plan.describe()}", markup=False, highlight=False)
