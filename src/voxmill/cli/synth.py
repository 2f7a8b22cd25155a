"""``voxmill synth [TEXT] -i FILE -o OUT``: only turns flags into SynthOptions and reports."""

from __future__ import annotations

import codecs
import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from voxmill.cli.common import RAY_ADDRESS_HELP, backend_value, console, err_console, state, workers_value
from voxmill.errors import ConfigError
from voxmill.synth import SynthOptions, synthesize_file

# A whole book is a few MB; past this the "text" is a device or a mistake (``-i /dev/urandom``).
MAX_TEXT_BYTES = 64 * 1024 * 1024
_READ_BLOCK = 1024 * 1024


def _read_text(text: str | None, input_file: str | None) -> tuple[str, bool]:
    """(text, is markdown). ``-i -`` reads stdin."""
    if text is not None and input_file is not None:
        raise ConfigError("give the text as an argument or with -i, not both")
    if input_file is None:
        if text is None:
            raise ConfigError("no text: give it as an argument, or -i FILE (-i - for stdin)")
        return text, False
    if input_file == "-":
        return _decode(sys.stdin.buffer, "stdin"), False
    path = Path(input_file)
    try:
        with path.open("rb") as stream:
            body = _decode(stream, str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return body, path.suffix.lower() in (".md", ".markdown")


def _decode(stream: BinaryIO, name: str) -> str:
    """UTF-8 text from ``stream``, read in blocks: a binary file or a device fails at its first bad
    byte or at ``MAX_TEXT_BYTES``, instead of being read whole (or forever) first."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    parts: list[str] = []
    total = 0
    while True:
        block = stream.read(_READ_BLOCK)
        total += len(block)
        if total > MAX_TEXT_BYTES:
            raise ConfigError(f"{name}: more than {MAX_TEXT_BYTES // (1024 * 1024)} MB of text; split it")
        try:
            parts.append(decoder.decode(block, final=not block))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{name}: not UTF-8 text (byte {total - len(block) + exc.start})") from None
        if not block:
            return "".join(parts)


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
        str, typer.Option("--voice", "-v", help="Piper voice: a name (see voxmill voices) or a path to X.onnx.")
    ] = "piper:en_US-joe-medium",
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
    workers: Annotated[str, typer.Option(help="Workers, or 'auto' (one per core).")] = "auto",
    backend: Annotated[
        str, typer.Option(help="thread (one process, one voice shared by the workers), process or ray.")
    ] = SynthOptions.backend,
    ray_address: Annotated[str | None, typer.Option("--ray-address", help=RAY_ADDRESS_HELP)] = None,
) -> None:
    """Speak a long text (a book, an article) with a Piper voice, in parallel and in order.

    Chapters start at headings ("Chapter 3", markdown "#"); paragraphs at blank lines. The
    loudness is even across the output; with --resume, finished chapters are not spoken again.
    SSML/HTML tags are not read aloud (<break time="1s"/> is a pause). Exit 2 for empty text, an
    unknown voice, a text in a script the voice cannot read, an unwritable output, the input file as
    output, or an output another run is writing.
    """
    body, markdown = _read_text(text, input_file)
    if fmt.lower().lstrip(".") not in ("wav", "flac", "ogg", "mp3"):
        raise ConfigError(f"--format {fmt}: use wav, flac, ogg or mp3")
    opts = SynthOptions(
        speaker=speaker,
        length_scale=length_scale,
        noise_scale=noise_scale,
        noise_w=noise_w,
        sentence_silence=sentence_silence,
        paragraph_silence=paragraph_silence,
        chapter_silence=chapter_silence,
        max_chars=max_chars,
        markdown=markdown,
        target_lufs=None if keep_level else target_lufs,
        peak_ceiling_db=peak_ceiling,
        chapters=chapters,
        chapter_format="." + fmt.lower().lstrip("."),
        srt=srt,
        resume=resume,
        overwrite=overwrite,
        workers=workers_value(ctx, workers),
        backend=backend_value(backend, ray_address),
        ray_address=ray_address,
        progress=False if state(ctx).settings.quiet else None,
    )
    source = None if input_file in (None, "-") else Path(input_file)
    result = synthesize_file(body, output, voice, opts, source=source)
    d = result.to_dict()
    resumed = sum(1 for c in result.chapters if c.resumed)
    level = result.loudness
    lufs = f", {level.lufs:.1f} LUFS" if level is not None and level.lufs is not None else ""
    console.print(
        f"{result.output}: {d['seconds']:.1f}s of speech in {d['wall_seconds']:.1f}s ({d['x_realtime']}x realtime), "
        f"{len(result.chapters)} chapter(s)" + (f", {resumed} resumed" if resumed else "") + f"{lufs}, {result.voice}",
        markup=False, highlight=False,
    )  # fmt: skip
    for note in result.notes:  # never hidden by --quiet: each says the audio is not what was asked for
        err_console.print(f"warning: {note.message}", markup=False, highlight=False)
