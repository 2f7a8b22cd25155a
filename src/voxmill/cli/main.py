"""``voxmill`` entry point: global options, settings, and the one place errors become exit codes.

Exit codes: 0 all good; 1 findings or failed items; 2 usage or configuration error; 130 interrupted.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Optional

import typer

from voxmill import __version__
from voxmill.cli.common import State, err_console
from voxmill.config import load_settings
from voxmill.errors import ConfigError, DatasetError, OutputError, VoxmillError

# Each command: (module in voxmill.cli, the function or Typer in it). A run imports only the module of
# the command it names (every module for --help or a name not listed): importing all of them cost every
# run 0.45 s and 51 MiB, `voxmill synth` alone 0.29 s and 43 MiB, ahead of any work.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("info", "info"),
    "prepare": ("prepare", "prepare"),
    "check": ("check", "check"),
    "convert": ("convert", "convert"),
    "synth": ("synth", "synth"),
    "serve": ("serve", "serve"),
    "segment": ("segment", "segment"),
    "train": ("train", "train"),
    "train-status": ("train", "train_status"),
    "voices": ("models", "voices"),
    "doctor": ("models", "doctor"),
    "models": ("models", "models_app"),
}
# The root options that take a value: the word after them is not a command's name.
_VALUED = ("--config",)


def named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names (the first word that is not a root option or its value), if any."""
    words = iter(argv)
    for word in words:
        if word == "--":
            return next(words, None)
        if word in _VALUED:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def build_app(names: Sequence[str] = tuple(COMMANDS)) -> typer.Typer:
    """The CLI with the commands ``names`` (all by default), in the order of :data:`COMMANDS`."""
    app = typer.Typer(
        name="voxmill",
        help="Parallel voice-processing workbench: inspect, prepare, check, convert and synthesize speech.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(root)
    for name in (name for name in COMMANDS if name in names):
        module, attribute = COMMANDS[name]
        command = getattr(importlib.import_module(f"voxmill.cli.{module}"), attribute)
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name)(command)
    return app


def _version(value: bool) -> None:
    if value:
        typer.echo(f"voxmill {__version__}")
        raise typer.Exit()


def root(
    ctx: typer.Context,
    config: Annotated[
        Optional[Path],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10
        typer.Option("--config", help="Settings file (default: ./voxmill.yaml, then ~/.config/voxmill/voxmill.yaml)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Parallel voice-processing workbench: inspect, prepare, check, convert and synthesize speech.

    Settings come from defaults < voxmill.yaml < VOXMILL_* environment variables < these flags.
    """
    overrides = {"quiet": True if quiet else None, "debug": True if debug else None}
    ctx.obj = State(settings=load_settings(config, overrides=overrides))
    # main() decides how to show an error after the command has unwound: it reads debug from here,
    # so `debug: true` in voxmill.yaml and VOXMILL_DEBUG=1 show tracebacks as --debug does.
    global _settings_debug
    _settings_debug = ctx.obj.settings.debug


_settings_debug = False  # this invocation's Settings.debug, once the root callback has loaded them


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also what the console script exits with)."""
    global _settings_debug
    try:
        return _main(argv)
    finally:
        _settings_debug = False  # the next in-process invocation loads its own settings


def _main(argv: list[str] | None) -> int:
    words = argv if argv is not None else sys.argv[1:]
    flag = "--debug" in words
    name = named_command(words)
    app = build_app((name,) if name in COMMANDS else tuple(COMMANDS))

    def debug() -> bool:
        return flag or _settings_debug

    try:
        # Outside standalone mode click returns the code of typer.Exit instead of raising it.
        code = app(args=argv, prog_name="voxmill", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except (ConfigError, DatasetError) as exc:
        # Bad settings and unreadable inputs are usage errors: nothing was processed.
        if debug():
            raise
        # An unusable output (OutputError) is a usage error too, but no setting is wrong.
        kind = "config error" if isinstance(exc, ConfigError) and not isinstance(exc, OutputError) else "error"
        err_console.print(f"voxmill: {kind}: {exc}", markup=False, highlight=False)
        return 2
    except (VoxmillError, OSError) as exc:
        # An OSError is the system saying no where voxmill did not expect it (a full disk, a read-only
        # mount, a lost network share): one line naming the file, as for voxmill's own errors.
        if debug():
            raise
        err_console.print(f"voxmill: error: {exc}", markup=False, highlight=False)
        return 1
    except Exception as exc:
        # click's usage errors (typer vendors click, so match by shape): message + usage, exit 2.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            return exit_code
        raise
    if code == 130:  # typer turns Ctrl-C into Exit(130) without a word
        err_console.print("voxmill: interrupted")
    return int(code) if isinstance(code, int) else 0


def _workers_skip_main() -> None:
    """Spawned workers re-run the parent's main script, in case pickled tasks live there. The
    ``voxmill`` console script holds none, yet re-running it costs each worker the whole CLI (typer,
    rich: ~0.15 s of CPU). Naming it as a package's ``__main__`` makes multiprocessing skip it, as it
    already does for ``python -m voxmill``."""
    main_module = sys.modules.get("__main__")
    if main_module is not None and getattr(main_module, "__spec__", None) is None:
        main_module.__spec__ = importlib.util.find_spec("voxmill.__main__")


def run() -> None:
    """Console-script entry point."""
    _workers_skip_main()
    try:
        code = main()
    except KeyboardInterrupt:  # between typer's handler and ours, e.g. during start-up
        err_console.print("voxmill: interrupted")
        code = 130
    sys.exit(code)
