"""``voxmill segment IN... -o OUT``: flags -> SegmentOptions, run, render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from voxmill.cli.common import BackendFlag, TimeoutFlag, WorkersFlag, console, err_console, print_plan, run_options
from voxmill.engine.filters import ClipFilters
from voxmill.segment import SegmentOptions, run


def segment(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Long recordings (any format voxmill reads), in reading order.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The dataset folder to write.")],
    text: Annotated[
        Optional[Path],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10
        typer.Option(
            "--text",
            help="The book the recordings read (.txt or .md): each clip gets the span it covers, with its "
            "punctuation and casing. Without it clips keep the recognizer's text.",
        ),
    ] = None,
    formats: Annotated[list[str], typer.Option("--format", "-f", help="piper, hf or nemo (repeatable).")] = ["piper"],  # noqa: B006
    min_seconds: Annotated[float, typer.Option("--min-seconds", help="Shortest clip kept (seconds).")] = 1.0,
    max_seconds: Annotated[
        float, typer.Option("--max-seconds", help="Longest clip: longer speech is cut in its longest pauses.")
    ] = 15.0,
    asr: Annotated[
        str, typer.Option("--asr", help="The faster-whisper model (see `voxmill models`).")
    ] = "whisper:tiny.en",
    language: Annotated[
        str, typer.Option("--language", help="Language spoken, as a code (en, ru, ca); 'auto' detects.")
    ] = "en",
    max_cer: Annotated[
        float,
        typer.Option(
            "--max-cer", help="With --text: drop clips whose recognized text differs more (0.1 = 10%) from their span."
        ),
    ] = 0.1,
    speaker: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--speaker", help="The speaker's name, written with every clip."),
    ] = None,
    sample_rate: Annotated[int, typer.Option("--sample-rate", help="Output sample rate (Hz).")] = 22050,
    espeak_voice: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--espeak-voice", help="espeak-ng voice the Piper config names (default: from --language)."),
    ] = None,
    val_fraction: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--val-fraction", help="Hold out this fraction of clips for validation (metadata_val.csv)."),
    ] = None,
    beam_size: Annotated[int, typer.Option("--beam-size", help="Whisper's beam: 1 is greedy (fastest).")] = 1,
    min_snr: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option("--min-snr", help="Drop clips with an estimated SNR below this (dB)."),
    ] = None,
    min_rate: Annotated[
        float, typer.Option("--min-speaking-rate", help="Drop clips slower than this (characters per second).")
    ] = 3.0,
    max_rate: Annotated[
        float, typer.Option("--max-speaking-rate", help="Drop clips faster than this (characters per second).")
    ] = 30.0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted run in OUT.")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier run's output in OUT (only files voxmill wrote).")
    ] = False,
    workers: WorkersFlag = None,
    backend: BackendFlag = None,
    timeout: TimeoutFlag = None,
) -> None:
    """Cut long recordings (audiobooks, podcasts, lectures) into a training dataset of 1-15 s clips.

    Silero VAD finds the pauses; clips are cut only there (never inside a word), in the longest pauses
    first, with a little silence kept at each edge. faster-whisper transcribes them on every core. With
    --text, the recognized words are aligned to the whole book (skipped pages, repeated takes and
    recognition errors tolerated) and each clip gets the book's text for its span; clips too far from
    it (--max-cer) are dropped. Writes the same layouts as `voxmill prepare` (Piper folder, HF parquet,
    NeMo manifests), report.jsonl (every clip: source, start, end, cer, reason) and stats.json.
    """
    opts = SegmentOptions(
        inputs=inputs,
        out=output,
        text=text,
        formats=formats,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        asr=asr,
        language=None if language == "auto" else language,
        max_cer=max_cer,
        speaker=speaker,
        sample_rate=sample_rate,
        espeak_voice=espeak_voice,
        beam_size=beam_size,
        val_fraction=val_fraction,
        filters=ClipFilters(min_snr_db=min_snr, min_chars_per_second=min_rate, max_chars_per_second=max_rate),
        resume=resume,
        overwrite=overwrite,
        run=run_options(ctx, workers, backend, timeout=timeout),
    )
    result = run(opts)
    stats = result.stats
    print_plan(result.plan)
    console.print(
        f"{stats['kept']} of {stats['clips']} clips kept: {stats['hours_kept'] * 60:.1f} min of "
        f"{stats['hours_in'] * 60:.1f} min -> {output}"
    )
    for code, count in list(stats["drop_reasons"].items())[:5]:
        err_console.print(f"  {count} {code}", markup=False, highlight=False)
    for path in stats["failed_files"]:
        err_console.print(f"failed: {path} (see report.jsonl)", markup=False, highlight=False)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
