"""``voxmill convert IN... OUT --processor NAME``: flags into ConvertOptions, ``convert.run``, one line per file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from voxmill.audio.slicing import SliceOptions
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
    state,
)
from voxmill.convert import ConvertedFile, ConvertOptions, make_processor, run
from voxmill.errors import ConfigError, Reason

# Failures of one input that are usage errors (exit 2): what it is, or where it goes, not the work.
USAGE = {
    Reason.MISSING, Reason.UNREADABLE, Reason.EMPTY, Reason.DECODE, Reason.TRUNCATED, Reason.NON_FINITE,
    Reason.CONFIG, Reason.OUTPUT,
}  # fmt: skip


def _settings(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` for a plugin processor's options (numbers and true/false are converted)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected key=value")
        value: Any = raw
        if raw.lower() in ("true", "false"):
            value = raw.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(raw)
                    break
                except ValueError:
                    continue
        out[key.replace("-", "_")] = value
    return out


def convert(
    ctx: typer.Context,
    paths: Annotated[
        list[Path], typer.Argument(metavar="IN... OUT", help="Input recordings, then the output file or folder.")
    ],
    processor: Annotated[
        str,
        typer.Option(
            "--processor", "-p", help="pitch, gender, loudness, revoice, an installed plugin, or module:Class."
        ),
    ],
    semitones: Annotated[float | None, typer.Option(help="pitch: shift in semitones (e.g. 4, -3.5).")] = None,
    formant: Annotated[float | None, typer.Option(help="pitch, gender: formant shift ratio (1 = unchanged).")] = None,
    flatten: Annotated[bool, typer.Option("--flatten", help="pitch: flatten the melody to a monotone.")] = False,
    pitch_median: Annotated[float | None, typer.Option(help="gender: new median pitch in Hz (0 keeps it).")] = None,
    target_lufs: Annotated[float | None, typer.Option(help="loudness: target in LUFS.")] = None,
    voice: Annotated[str | None, typer.Option(help="revoice: Piper voice (see voxmill voices).")] = None,
    set_: Annotated[list[str], typer.Option("--set", help="Any processor option as key=value (repeatable).")] = [],  # noqa: B006
    chunk_seconds: Annotated[
        float, typer.Option(help="Longest chunk; past it the cut is forced (and crossfaded).")
    ] = 30.0,
    min_chunk_seconds: Annotated[float, typer.Option(help="No cut at a pause before this.")] = 5.0,
    threshold_db: Annotated[float, typer.Option(help="RMS below this (dBFS) is a pause.")] = -40.0,
    min_silence_ms: Annotated[float, typer.Option(help="A pause this long is a place to cut.")] = 300.0,
    max_silence_kept_ms: Annotated[
        float, typer.Option(help="Silence a chunk keeps at an edge; longer pauses skip the processor.")
    ] = 500.0,
    vad: Annotated[
        bool, typer.Option("--vad", help="Find pauses with Silero VAD instead of the RMS threshold.")
    ] = False,
    sample_rate: Annotated[int | None, typer.Option(help="Output sample rate (default: the input's).")] = None,
    workers: WorkersFlag = None,
    no_parallel: Annotated[
        bool, typer.Option("--no-parallel", help="One chunk after another, in this process (--backend serial).")
    ] = False,
    backend: BackendFlag = None,
    ray_address: RayAddressFlag = None,
    threads_per_worker: ThreadsFlag = None,
    timeout: TimeoutFlag = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Keep the chunks a killed or failed run of the same input and options finished."),
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="A chunk that fails twice is an error (exit 1, no output).")
    ] = False,
    peak_ceiling_db: Annotated[
        float,
        typer.Option(
            help="No output sample above this (dBFS): a look-ahead limiter catches the processor's overshoot."
        ),
    ] = -1.0,
) -> None:
    """Process long recordings in parallel chunks cut at pauses, and stitch them back without clicks.

    IN: wav/flac/mp3/ogg/m4a/...; OUT: a file (wav/flac/ogg/mp3 by suffix) or, for several inputs,
    a folder. A chunk the processor fails on is retried once, then keeps its original audio and is
    listed at the end (--strict: that input fails, exit 1). An input that cannot be converted is
    reported and the others still are: exit 2 for unreadable input or an unusable output, as for bad
    options. A run killed mid-file goes on from its finished chunks with --resume (same output bytes).

    The output keeps the input's channels (revoice makes one: it says so) and never clips: peaks the
    processor pushes past --peak-ceiling-db are limited. Every output is checked before any work: an
    output that is an input, or two inputs that would be written to one file, exit 2. A second run
    writing the same file exits 2 naming the first.
    """
    if len(paths) < 2:
        raise ConfigError("give at least one input and the output (IN... OUT)")
    *inputs, output = paths
    options: dict[str, Any] = {
        "semitones": semitones, "formant": formant, "flatten": True if flatten else None,
        "pitch_median": pitch_median, "target_lufs": target_lufs, "voice": voice,
    }  # fmt: skip
    options = {k: v for k, v in options.items() if v is not None} | _settings(set_)
    slicing = SliceOptions(
        max_seconds=chunk_seconds,
        min_seconds=min_chunk_seconds,
        threshold_db=threshold_db,
        min_silence_ms=min_silence_ms,
        max_silence_kept_ms=max_silence_kept_ms,
        vad=vad,
    )
    opts = ConvertOptions(
        inputs=inputs,
        output=output,
        processor=make_processor(processor, options),
        slicing=slicing,
        sample_rate=sample_rate,
        run=run_options(ctx, workers, "serial" if no_parallel else backend, ray_address, threads_per_worker, timeout),
        strict=strict,
        peak_ceiling_db=peak_ceiling_db,
        resume=resume,
        voices_dir=state(ctx).settings.voices_dir,
    )
    result = run(opts)
    for file in result.files:
        if file.converted is not None:
            _report(file.converted)
        elif file.failed is not None:
            err_console.print(f"voxmill: error: {file.failed.message}", markup=False, highlight=False)
    print_plan(result.plan)
    failed = [f.failed.code for f in result.files if f.failed is not None]
    # Unreadable input, an unusable output, options the input cannot take: usage errors (2), as a
    # single-input run reports them; a chunk failed with --strict: a failed item (1).
    raise typer.Exit(2 if USAGE & set(failed) else 1 if failed else 0)


def _report(result: ConvertedFile) -> None:
    limited = f", peaks limited by up to {result.peak_reduction_db:.1f} dB" if result.peak_reduction_db >= 0.05 else ""
    resumed = f", {result.resumed_chunks} resumed" if result.resumed_chunks else ""
    console.print(
        f"{result.output}: {result.seconds:.1f}s in {result.wall_seconds:.1f}s ({result.x_realtime}x realtime), "
        f"{result.chunks} chunks ({result.silent_chunks} silent{resumed}){limited}",
        markup=False, highlight=False,
    )  # fmt: skip
    if result.mixed_to_mono:
        message = (
            f"warning: {result.input}: this processor makes one channel: the {result.input_channels} input channels "
            f"were mixed to mono in {result.output}"
        )
        err_console.print(message, markup=False, highlight=False)
    for kept in result.kept_original:
        err_console.print(f"warning: {result.input}: chunk {kept.index} at {kept.at_seconds:.1f}s kept its original "
                          f"audio: {kept.message}", markup=False, highlight=False)  # fmt: skip
