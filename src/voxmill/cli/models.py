"""``voxmill voices``, ``voxmill models status``, ``voxmill doctor``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from voxmill.cli.common import console, state
from voxmill.config import Settings
from voxmill.engine import usable_cores
from voxmill.models import ModelManager, Registry
from voxmill.models.doctor import environment_report

models_app = typer.Typer(help="Inspect the model manager.", no_args_is_help=True)


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def manager_from_settings(settings: Settings) -> ModelManager:
    """A model manager for one CLI command (its sessions may use every usable core)."""
    return ModelManager.from_settings(settings, threads=usable_cores())


def voices(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per voice.")] = False,
) -> None:
    """List the Piper voices voxmill can use: installed packages, voices exported by `voxmill train` (in their
    run folders), the voices folder (VOXMILL_VOICES_DIR)."""
    registry = Registry(state(ctx).settings.voices_dir)
    specs = registry.all("piper")
    broken = registry.broken("piper")
    if as_json:
        for row in [*(s.to_dict() for s in specs), *(b.to_dict() for b in broken)]:
            print(json.dumps(row))
        return
    table = Table(box=None, header_style="bold")
    for column in ("name", "language", "quality", "rate", "speakers", "MiB", "path"):
        table.add_column(column)
    for s in specs:
        table.add_row(
            s.name, s.language or "-", s.quality or "-", str(s.sample_rate or "-"), str(s.speakers),
            _mib(s.size_bytes), str(s.path),
        )  # fmt: skip
    console.print(table if specs else f"no voices found (voices folder: {registry.voices_dir})")
    # A voice that cannot be used is listed with the reason, not hidden: otherwise naming it only
    # says "unknown model".
    for b in broken:
        console.print(f"broken {b.name} ({b.path}): {b.reason}")


@models_app.command("status")
def status(
    ctx: typer.Context,
    load: Annotated[
        list[str] | None, typer.Option("--load", help="Load these models first, to measure them (repeatable).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per model.")] = False,
) -> None:
    """Models known to this process's manager: device, estimated and measured size, refs, expiry."""
    manager = manager_from_settings(state(ctx).settings)
    for name in load or []:
        with manager.lease(manager.registry.resolve(name)):
            pass
    rows = manager.status()
    if as_json:
        for row in rows:
            print(json.dumps(row.to_dict()))
        return
    if not rows:
        console.print("no models loaded in this process (use --load NAME to load and measure one)")
        return
    table = Table(box=None, header_style="bold")
    for column in (
        "name",
        "kind",
        "device",
        "est MiB",
        "measured MiB",
        "refs",
        "pinned",
        "load s",
        "expires in s",
        "note",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.name, r.kind, r.device, _mib(r.estimated_bytes), _mib(r.measured_bytes), str(r.refs),
            "yes" if r.pinned else "no", f"{r.load_seconds:.2f}",
            "-" if r.expires_in is None else f"{r.expires_in:.0f}",
            "; ".join(filter(None, [r.fallback_reason, r.note])),
        )  # fmt: skip
    console.print(table)
    console.print(f"budget: {_mib(manager.budget_bytes)} MiB RAM, in use {_mib(manager.used_bytes())} MiB")


def doctor(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="The whole report as one JSON object.")] = False,
) -> None:
    """Check this machine: cores, RAM, GPUs, onnxruntime providers, models, audio formats, extras."""
    report = environment_report(Registry(state(ctx).settings.voices_dir))
    report["usable_cores"] = usable_cores()
    if as_json:
        print(json.dumps(report))
        return
    gib = 2**30
    say = _styled
    say(f"[bold]python[/] {_e(report['python'])} on {_e(report['platform'])}")
    say(
        f"[bold]cpu[/] {report['usable_cores']} usable cores ({report['logical_cpus']} logical); "
        f"[bold]ram[/] {report['ram_available_bytes'] / gib:.1f} of {report['ram_total_bytes'] / gib:.1f} GiB available"
    )
    if report["gpus"]:
        for g in report["gpus"]:
            free, total = g["free_bytes"] / gib, g["total_bytes"] / gib
            say(f"[bold]gpu {g['index']}[/] {_e(g['name'])}: {free:.1f} of {total:.1f} GiB free")
    else:
        say(f"[bold]gpu[/] none ({_e(report['gpu_note'])})")
    say(f"[bold]onnxruntime providers[/] {_e(', '.join(report['onnxruntime_providers']))}")
    for label, key in (("voices", "voices"), ("asr models", "asr_models"), ("vad", "vad_models")):
        names = ", ".join(m["name"] for m in report[key]) or "none"
        say(f"[bold]{label}[/] {_e(names)}")
    for v in report["voices"]:
        if v.get("note"):
            say(f"[bold]voice[/] {_e(v['name'])}: [yellow]{_e(v['note'])}[/]")
    for b in report["broken_models"]:
        say(f"[bold]broken[/] [yellow]{_e(b['name'])}[/]: {_e(b['broken'])}")
    say(f"[bold]voices folder[/] {_e(report['voices_dir'])}")
    audio = report["audio"]
    say(
        f"[bold]audio[/] libsndfile {_e(audio['libsndfile'])} ({_e(', '.join(audio['soundfile_formats']))}); "
        f"FFmpeg libavformat {_e(audio['ffmpeg_libavformat'] or 'missing')}"
    )
    for extra, info in report["extras"].items():
        if info["installed"]:
            say(f"[bold]extra {_e(extra)}[/] [green]installed[/]")
        else:
            say(
                f"[bold]extra {_e(extra)}[/] [yellow]missing {_e(', '.join(info['missing']))}[/]: {_e(info['install'])}"
            )


def _e(value: object) -> str:
    """A value (a path, a device name) inside our markup: escaped, so it prints as it is."""
    return escape(str(value))


def _styled(line: str) -> None:
    # The console prints plain text by default (cli/common.py); these lines are our own markup.
    console.print(line, markup=True, highlight=False)
