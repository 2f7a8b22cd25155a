"""``voxmill convert IN... OUT --processor NAME``: only turns flags into ConvertOptions and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from voxmill.audio.slicing import SliceOptions
from voxmill.cli.common import RAY_ADDRESS_HELP, backend_value, console, err_console, state, workers_value
from voxmill.convert import ConvertOptions, ConvertResult, convert_file, make_processor
from voxmill.convert.run import plan_outputs
from voxmill.errors import AudioDecodeError, ConfigError, OutputError


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
    workers: Annotated[str, typer.Option(help="Workers, or 'auto' (one per core).")] = "auto",
    no_parallel: Annotated[
        bool, typer.Option("--no-parallel", help="One chunk after another, in this process.")
    ] = False,
    backend: Annotated[
        str, typer.Option(help="auto (threads if the processor frees the GIL), process, thread or ray.")
    ] = "auto",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help=RAY_ADDRESS_HELP)] = None,
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
    listed at the end (--strict: exit 1 instead). Exit 2 for unreadable input or bad options.

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
    proc = make_processor(processor, options)
    quiet = state(ctx).settings.quiet
    slicing = SliceOptions(
        max_seconds=chunk_seconds,
        min_seconds=min(min_chunk_seconds, chunk_seconds),
        threshold_db=threshold_db,
        min_silence_ms=min_silence_ms,
        max_silence_kept_ms=max_silence_kept_ms,
        search_seconds=min(SliceOptions.search_seconds, chunk_seconds),
        vad=vad,
    )
    opts = ConvertOptions(
        slicing=slicing,
        sample_rate=sample_rate,
        workers=workers_value(ctx, workers),
        parallel=not no_parallel,
        backend=backend_value(backend, ray_address),
        ray_address=ray_address,
        strict=strict,
        progress=False if quiet else None,
        peak_ceiling_db=peak_ceiling_db,
    )
    opts.validate()
    pairs = plan_outputs(inputs, output)  # every output checked before the first is written
    unreadable = 0
    for path, target in pairs:
        try:
            result = convert_file(path, target, proc, opts)
        except (AudioDecodeError, OutputError) as exc:
            # One unreadable input, or one output another run holds, fails that input only: the
            # others are still converted, and the run exits 2.
            err_console.print(f"voxmill: error: {exc}", markup=False, highlight=False)
            unreadable += 1
            continue
        _report(path, result)
    raise typer.Exit(2 if unreadable else 0)


def _report(path: Path, result: ConvertResult) -> None:
    d = result.to_dict()
    limited = f", peaks limited by up to {d['peak_reduction_db']:.1f} dB" if d["peak_reduction_db"] >= 0.05 else ""
    console.print(
        f"{result.output}: {d['seconds']:.1f}s in {d['wall_seconds']:.1f}s ({d['x_realtime']}x realtime), "
        f"{result.chunks} chunks ({result.silent_chunks} silent), {result.backend} x{result.workers}{limited}",
        markup=False, highlight=False,
    )  # fmt: skip
    if result.mixed_to_mono:
        message = (
            f"warning: {path}: this processor makes one channel: the {result.input_channels} input channels "
            f"were mixed to mono in {result.output}"
        )
        err_console.print(message, markup=False, highlight=False)
    for index, at, reason in result.kept_original:
        err_console.print(f"warning: {path}: chunk {index} at {at:.1f}s kept its original audio: {reason}",
                          markup=False, highlight=False)  # fmt: skip
