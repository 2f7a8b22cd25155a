"""``voxmill prepare SRC... -o OUT``: only turns flags into PrepareOptions and renders the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from voxmill.cli.common import (
    BackendFlag,
    RayAddressFlag,
    ThreadsFlag,
    TimeoutFlag,
    WorkersFlag,
    console,
    err_console,
    print_plan,
    run_options,
)
from voxmill.corpus import FORMATS, check_label
from voxmill.errors import ConfigError
from voxmill.prepare import ClipOptions, PrepareOptions, ReasonGroup, parse_source, run


def _labels(values: list[str]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--label {value!r}: expected key=value")
        check_label(key, f"--label {value}")  # a column voxmill writes (text, audio, ...) is not a label
        labels[key] = val
    return labels


def _reason_line(group: ReasonGroup) -> str:
    """``truncated audio (5: a, b, c, ...)``: one kind of reason, with a few of its rows."""
    more = ", ..." if group.count > len(group.examples) else ""
    if not group.examples:
        return f"{group.words} ({group.count})"
    return f"{group.words} ({group.count}: {', '.join(group.examples)}{more})"


def prepare(
    ctx: typer.Context,
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="SRC...", help="Corpora: a folder or metadata.csv / *.tsv / *.parquet; SRC::key=value adds labels."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    formats: Annotated[list[str], typer.Option("--format", "-f", help="piper, hf or nemo (repeatable).")] = ["piper"],  # noqa: B006
    source_format: Annotated[str | None, typer.Option(help=f"Force the source format: {', '.join(FORMATS)}.")] = None,
    label: Annotated[list[str], typer.Option("--label", help="key=value label for every source (repeatable).")] = [],  # noqa: B006
    speaker_from_dir: Annotated[
        bool, typer.Option(help="Folder sources: the first sub-folder is the speaker.")
    ] = False,
    sample_rate: Annotated[int, typer.Option(help="Output sample rate.")] = 22050,
    trim: Annotated[bool, typer.Option(help="Trim leading/trailing non-speech (Silero VAD).")] = True,
    keep_silence: Annotated[float, typer.Option(help="Seconds of silence kept around speech when trimming.")] = 0.25,
    loudness: Annotated[float, typer.Option(help="Target loudness in LUFS (with a -1 dBFS peak ceiling).")] = -23.0,
    no_loudness: Annotated[bool, typer.Option("--no-loudness", help="Leave levels as they are.")] = False,
    min_duration: Annotated[float, typer.Option(help="Drop clips shorter than this (seconds, after trimming).")] = 0.0,
    max_duration: Annotated[float, typer.Option(help="Drop clips longer than this (seconds).")] = 30.0,
    max_clipping: Annotated[
        float, typer.Option(help="Drop clips with more than this fraction of clipped samples.")
    ] = 0.001,
    min_snr: Annotated[
        float | None,
        typer.Option(
            "--min-snr",
            metavar="DB",
            help="Drop clips whose estimated signal-to-noise ratio is below DB (after trimming; off by default).",
        ),
    ] = None,
    min_speaking_rate: Annotated[
        float | None,
        typer.Option(
            "--min-speaking-rate",
            metavar="CPS",
            help="Drop clips spoken slower than CPS characters of text per second (after trimming; off by default).",
        ),
    ] = None,
    max_speaking_rate: Annotated[
        float | None,
        typer.Option(
            "--max-speaking-rate",
            metavar="CPS",
            help="Drop clips spoken faster than CPS characters of text per second (often a wrong transcript; off "
            "by default).",
        ),
    ] = None,
    max_per_speaker: Annotated[int | None, typer.Option(help="Keep at most N clips per speaker (seeded).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the speaker cap and the validation split.")] = 0,
    val_fraction: Annotated[
        float | None, typer.Option(help="Fraction of clips for validation (speaker-aware).")
    ] = None,
    val_size: Annotated[int | None, typer.Option(help="Number of clips for validation (speaker-aware).")] = None,
    espeak_voice: Annotated[
        str | None, typer.Option(help="Phonemize every text with this espeak-ng voice (e.g. en-us).")
    ] = None,
    workers: WorkersFlag = None,
    backend: BackendFlag = None,
    ray_address: RayAddressFlag = None,
    threads_per_worker: ThreadsFlag = None,
    timeout: TimeoutFlag = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue an interrupted run in OUT (finished clips are kept); a finished run whose rows and "
            "options are unchanged is left as it is.",
        ),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier run's output in OUT (only files voxmill wrote).")
    ] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first failed row.")] = False,
    allow_outside: Annotated[
        bool,
        typer.Option(
            "--allow-outside", help="Read audio that metadata names outside its dataset folder (symlinks, ../, /abs)."
        ),
    ] = False,
) -> None:
    """Prepare speech corpora for training: decode, resample, trim, normalize, filter, split, write.

    Every input row gets one line in OUT/report.jsonl (ok, dropped or failed, with the reason); a bad
    file never stops the run. Exit code 0 when all rows are ok or dropped by filters, 1 when some
    failed, 2 for usage errors or an unreadable source.
    """
    labels = _labels(label)
    opts = PrepareOptions(
        sources=[parse_source(s, labels, source_format, speaker_from_dir) for s in sources],
        out=out,
        formats=formats,
        clip=ClipOptions(
            sample_rate=sample_rate,
            trim=trim,
            keep_silence=keep_silence,
            loudness=None if no_loudness else loudness,
            min_duration=min_duration,
            max_duration=max_duration,
            max_clipping=max_clipping,
            espeak_voice=espeak_voice,
            min_snr_db=min_snr,
            min_chars_per_second=min_speaking_rate,
            max_chars_per_second=max_speaking_rate,
        ),
        max_per_speaker=max_per_speaker,
        seed=seed,
        val_fraction=val_fraction,
        val_size=val_size,
        resume=resume,
        overwrite=overwrite,
        allow_outside=allow_outside,
        fail_fast=fail_fast,
        run=run_options(ctx, workers, backend, ray_address, threads_per_worker, timeout),
    )
    result = run(opts)
    for layout in result.layouts:
        err_console.print(f"read {layout}", highlight=False)
    if result.unchanged:
        err_console.print(f"nothing to do: {out} holds a finished run of the same rows and options", highlight=False)
    else:
        print_plan(result.plan)
    s = result.stats
    table = Table(title=f"prepared {out}", box=None, header_style="bold")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_column("top reasons")
    for status in ("ok", "dropped", "failed"):
        top = "; ".join(_reason_line(group) for group in s.top(status))
        table.add_row(status, str(s.counts.get(status, 0)), escape(top))
    console.print(table)
    console.print(
        f"speakers {s.speakers} (avg {s.avg_clips_per_speaker} clips), hours in {s.hours_in:.3f}, "
        f"out {s.hours_out:.3f}; train {s.train_clips}, validation {s.validation_clips}; "
        f"details in {out / 'report.jsonl'} and {out / 'stats.json'}"
    )
    raise typer.Exit(result.exit_code)
