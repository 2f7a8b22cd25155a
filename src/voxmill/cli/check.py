"""``voxmill check DATASET``: only turns flags into CheckOptions and renders the report."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from voxmill.check import CheckOptions, Report, Severity, run
from voxmill.cli.common import (
    BackendFlag,
    RayAddressFlag,
    ThreadsFlag,
    TimeoutFlag,
    WorkersFlag,
    console,
    print_plan,
    run_options,
)
from voxmill.corpus.sources import FORMATS

_STYLE = {
    Severity.FAIL: "bold red",
    Severity.WARN: "yellow",
    Severity.INFO: "cyan",
    Severity.SKIP: "dim",
    Severity.PASS: "green",
}


def _render(report: Report, verbose: bool) -> None:
    # Findings quote ids, texts and paths from the dataset: plain Text, so no markup or emoji code in
    # them is interpreted; only the severity and the verdict are styled, as Text styles.
    table = Table(box=None, header_style="bold", show_lines=False)
    table.add_column("check")
    table.add_column("")
    table.add_column("finding")
    table.add_column("fix", style="dim")
    for f in sorted(report.findings, key=lambda f: f.severity.rank):
        if f.severity is Severity.PASS and not verbose:
            continue
        message = f.message
        if f.items:
            shown = ", ".join(f.items[:3])
            message += f"\n  e.g. {shown}" + (f" (+{f.count - 3} more)" if f.count > 3 else "")
        table.add_row(Text(f.id), Text(f.severity.value, style=_STYLE[f.severity]), Text(message), Text(f.hint))
    console.print(table, highlight=False)
    s = report.summary
    counts = report.counts()
    colour = "green" if report.ready else "red"
    steps = "-" if s["steps_per_epoch"] is None else s["steps_per_epoch"]
    line = Text(report.verdict, style=f"bold {colour}")
    line.append(
        f"  {s['clips']} clips ({s.get('train_clips', s['clips'])} training, {s.get('val_clips', 0)} validation), "
        f"{s['hours']:.2f} h, {s['speakers']} speaker(s), "
        f"{steps} steps/epoch at batch {s['batch_size']}  "
        f"({counts['FAIL']} FAIL, {counts['WARN']} WARN, {counts['SKIP']} SKIP, {counts['PASS']} passed)"
    )
    console.print(line, highlight=False)


def check(
    ctx: typer.Context,
    dataset: Annotated[
        Path, typer.Argument(help="A dataset folder (metadata.csv + wavs/) or any source `voxmill prepare` reads.")
    ],
    config: Annotated[Path | None, typer.Option(help="Piper config.json (default: beside the metadata).")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="A .ckpt to resume from, or a folder (the newest .ckpt in it).")
    ] = None,
    model: Annotated[list[Path], typer.Option("--model", help="An exported VOICE.onnx to test (repeatable).")] = [],  # noqa: B006
    espeak_voice: Annotated[
        str | None, typer.Option(help="Phonemize with this espeak voice (default: the config's).")
    ] = None,
    asr: Annotated[bool, typer.Option("--asr", help="Transcribe every clip (whisper tiny.en) and compare.")] = False,
    report: Annotated[Path | None, typer.Option(help="Write report.md, report.html and report.json here.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON on stdout.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="A WARN also makes the dataset NOT READY.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List passed checks too.")] = False,
    batch_size: Annotated[int, typer.Option(help="Training batch size, for steps per epoch.")] = 32,
    source_format: Annotated[str | None, typer.Option(help=f"Force the source format: {', '.join(FORMATS)}.")] = None,
    allow_outside: Annotated[
        bool,
        typer.Option(
            "--allow-outside", help="Read audio that metadata names outside its dataset folder (symlinks, ../, /abs)."
        ),
    ] = False,
    workers: WorkersFlag = None,
    backend: BackendFlag = None,
    ray_address: RayAddressFlag = None,
    threads_per_worker: ThreadsFlag = None,
    timeout: TimeoutFlag = None,
) -> None:
    """Is this dataset ready to train a Piper voice? Every problem listed, each with a fix.

    Checks the metadata, every clip (decoding, rate, duration, clipping, silence, loudness, SNR), the
    texts (characters, speaking rate, phonemes), speakers, the Piper config, a checkpoint to resume
    from and exported voices. Exit code 0 READY, 1 NOT READY (a FAIL, or a WARN with --strict), 2 usage error.
    """
    run_opts = run_options(ctx, workers, backend, ray_address, threads_per_worker, timeout)
    if json_out:  # stdout is the JSON document; a bar on stderr would only be noise
        run_opts = dataclasses.replace(run_opts, progress=False)
    opts = CheckOptions(
        dataset=dataset,
        config=config,
        checkpoint=checkpoint,
        models=model,
        espeak_voice=espeak_voice,
        asr=asr,
        report_dir=report,
        strict=strict,
        batch_size=batch_size,
        source_format=source_format,
        allow_outside=allow_outside,
        run=run_opts,
    )
    result = run(opts)
    print_plan(result.plan)
    if json_out:
        sys.stdout.write(result.to_json())
    else:
        _render(result, verbose)
        if report is not None:
            console.print(f"report: {report / 'report.html'}", highlight=False)
    raise typer.Exit(result.exit_code)
