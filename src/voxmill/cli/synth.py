"""``voxmill synth [TEXT] -i FILE -o OUT``: only turns flags into SynthOptions and reports."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

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
from voxmill.errors import ConfigError
from voxmill.synth import SynthOptions, run
from voxmill.synth.options import DEFAULT_VOICE
from voxmill.text.source import read_stream


def synth(
    ctx: typer.Context,
    text: Annotated[str | None, typer.Argument(help="Text to speak (or use -i).")] = None,
    input_file: Annotated[
        str | None, typer.Option("--input", "-i", help="A .txt or .md file to speak; '-' reads stdin.")
    ] = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="OUT.wav/.flac/.ogg/.mp3, or a folder: one file per chapter."),
    ] = Path("speech.wav"),
    voice: Annotated[
        str,
        typer.Option(
            "--voice",
            "-v",
            help="Piper voice: a name (installed or in the settings' voices_dir; see voxmill voices) or a path "
            "to X.onnx.",
        ),
    ] = DEFAULT_VOICE,
    speaker: Annotated[str | None, typer.Option(help="Speaker id or name (multi-speaker voices).")] = None,
    length_scale: Annotated[float | None, typer.Option(help="Slower > 1 > faster (default: the voice's own).")] = None,
    noise_scale: Annotated[float | None, typer.Option(help="Voice variation; 0 = deterministic.")] = None,
    noise_w: Annotated[float | None, typer.Option(help="Rhythm variation; 0 = deterministic.")] = None,
    sentence_silence: Annotated[float, typer.Option(help="Seconds of silence after a sentence.")] = 0.2,
    paragraph_silence: Annotated[float, typer.Option(help="Seconds of silence after a paragraph.")] = 0.6,
    chapter_silence: Annotated[float, typer.Option(help="Seconds between chapters in one output file.")] = 1.5,
    max_chars: Annotated[
        int, typer.Option(help="Longer sentences are cut at clause boundaries (commas, semicolons, dashes).")
    ] = SynthOptions.max_chars,
    target_lufs: Annotated[
        float, typer.Option(help="Loudness of the whole output in LUFS (one gain; the peak stays under -1 dBFS).")
    ] = SynthOptions.target_lufs or -23.0,
    peak_ceiling: Annotated[
        float, typer.Option("--peak-ceiling-db", help="The highest peak (dBFS) the loudness gain may reach.")
    ] = SynthOptions.peak_ceiling_db,
    keep_level: Annotated[
        bool, typer.Option("--keep-level", help="No loudness target: keep the voice's own level.")
    ] = False,
    chapters: Annotated[
        bool, typer.Option("--chapters", help="One file per chapter in the OUT folder, plus chapters.json.")
    ] = False,
    srt: Annotated[bool, typer.Option("--srt", help="Subtitles (one cue per sentence) beside each file.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip chapters already spoken with the same text, voice and options.")
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an output folder an earlier run left (only its files are removed)."),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="Chapter file format with --chapters.")] = "wav",
    workers: WorkersFlag = None,
    backend: BackendFlag = None,
    ray_address: RayAddressFlag = None,
    threads_per_worker: ThreadsFlag = None,
    timeout: TimeoutFlag = None,
) -> None:
    """Speak a long text (a book, an article) with a Piper voice, in parallel and in order.

    Chapters start at headings ("Chapter 3", markdown "#"); paragraphs at blank lines. The
    loudness is even across the output; with --resume, finished chapters are not spoken again.
    SSML/HTML tags are not read aloud (<break time="1s"/> is a pause). Exit 2 for empty text, an
    unknown voice, a text in a script the voice cannot read, an unwritable output, the input file as
    output, or an output another run is writing.
    """
    if text is not None and input_file is not None:
        raise ConfigError("give the text as an argument or with -i, not both")
    if input_file == "-":
        text, input_file = read_stream(sys.stdin.buffer, "stdin"), None
    if fmt.lower().lstrip(".") not in ("wav", "flac", "ogg", "mp3"):
        raise ConfigError(f"--format {fmt}: use wav, flac, ogg or mp3")
    opts = SynthOptions(
        text=text,
        input=None if input_file is None else Path(input_file),
        output=output,
        voice=voice,
        voices_dir=state(ctx).settings.voices_dir,
        speaker=speaker,
        length_scale=length_scale,
        noise_scale=noise_scale,
        noise_w=noise_w,
        sentence_silence=sentence_silence,
        paragraph_silence=paragraph_silence,
        chapter_silence=chapter_silence,
        max_chars=max_chars,
        target_lufs=None if keep_level else target_lufs,
        peak_ceiling_db=peak_ceiling,
        chapters=chapters,
        chapter_format="." + fmt.lower().lstrip("."),
        srt=srt,
        resume=resume,
        overwrite=overwrite,
        run=run_options(ctx, workers, backend, ray_address, threads_per_worker, timeout),
    )
    result = run(opts)
    resumed = sum(1 for c in result.chapters if c.resumed)
    level = result.loudness
    lufs = f", {level.lufs:.1f} LUFS" if level is not None and level.lufs is not None else ""
    console.print(
        f"{result.output}: {result.seconds:.1f}s of speech in {result.wall_seconds:.1f}s ({result.x_realtime}x "
        f"realtime), {len(result.chapters)} chapter(s)" + (f", {resumed} resumed" if resumed else "")
        + f"{lufs}, {result.voice}",
        markup=False, highlight=False,
    )  # fmt: skip
    print_plan(result.plan)
    for note in result.notes:  # never hidden by --quiet: each says the audio is not what was asked for
        err_console.print(f"warning: {note.message}", markup=False, highlight=False)
