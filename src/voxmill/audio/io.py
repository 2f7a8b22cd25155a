"""Read and write audio files: soundfile (libsndfile) first, PyAV (FFmpeg) for everything else.

Every failure to read becomes one :class:`AudioDecodeError` naming the file and the reason, and every
write goes to a temporary name in the target folder and is renamed into place, so a crash never
leaves a half-written file behind. (About 400 lines: reading, probing, streaming blocks and writing
share the decoder choice and its error wording, which is why they stay in one module.)
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

# errors is the one exception tree every layer raises from; imported via the package root (see
# ARCHITECTURE: leaves import no other voxmill logic, and errors holds none).
from voxmill import errors
from voxmill.audio.ffmpeg import AV_WRITE, av_blocks, av_decode, av_encode, av_info
from voxmill.audio.flac import read_flac
from voxmill.audio.quiet import quiet_native_stderr, quietly
from voxmill.audio.resample import resample
from voxmill.audio.types import Audio, Block, SourceInfo, rate_problem

AudioDecodeError = errors.AudioDecodeError
AudioEncodeError = errors.AudioEncodeError
Reason = errors.Reason

__all__ = ["Audio", "Block", "SourceInfo", "atomic_path", "blocks", "load", "probe", "save", "write_text_atomic"]

# Suffixes libsndfile writes natively, mapped to (format, default subtype).
# Clips up to this many samples (~3 min of 22 kHz stereo) are encoded in memory before writing.
_IN_MEMORY_SAMPLES = 1 << 23
_SF_WRITE = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".oga": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
    ".aiff": ("AIFF", "PCM_16"),
    ".aif": ("AIFF", "PCM_16"),
}


def _check_file(path: Path) -> None:
    try:
        status = path.stat()
    except FileNotFoundError:
        raise AudioDecodeError(path, "file not found", Reason.MISSING) from None
    except OSError as exc:
        raise AudioDecodeError(path, f"cannot read file: {exc.strerror or exc}", Reason.UNREADABLE) from None
    size = status.st_size
    if stat.S_ISDIR(status.st_mode):
        raise AudioDecodeError(path, "is a directory, not an audio file", Reason.UNREADABLE)
    # A FIFO, socket or device has no size and may never end: reading it would hang or never stop.
    if not stat.S_ISREG(status.st_mode):
        raise AudioDecodeError(path, "not a regular file (a pipe, socket or device)", Reason.UNREADABLE)
    if size == 0:
        raise AudioDecodeError(path, "empty file (0 bytes)", Reason.EMPTY)


def _sf_reason(exc: Exception) -> str:
    text = str(exc)
    # soundfile prefixes messages with "Error opening '<path>': "; the path is already in our message.
    if ": " in text and text.startswith("Error opening"):
        text = text.split(": ", 1)[1]
    if "does not exist" in text or "Format not recognised" in text:
        # libsndfile/mpg123 say "does not exist" for a file that exists but holds no valid stream.
        return "not a recognised audio format or corrupt data"
    return text or type(exc).__name__


def _looks_like_text(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(512)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and all(ch.isprintable() or ch in "\r\n\t" for ch in text)


_WAV_DATA = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers (pipes) leave these placeholder sizes in the header: not a truncation.
_WAV_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF - 8}


def _truncation(path: Path, info: sf.SoundFile | sf._SoundFileInfo) -> str | None:
    """Why a file libsndfile opened is cut short, or None. libsndfile itself reads such files quietly."""
    if info.format == "WAV":
        match = _WAV_DATA.search(info.extra_info)
        if match:
            declared, present = int(match.group(1)), int(match.group(2))
            if declared > present and declared not in _WAV_STREAMING_SIZES:
                return f"truncated: header declares {declared} data bytes, file holds {present}"
    elif info.format == "OGG" and not _ogg_has_end(path):
        return "truncated: Ogg stream has no end-of-stream page"
    return None


def _ogg_has_end(path: Path) -> bool:
    """True when the last Ogg page carries the end-of-stream flag (header byte 5, bit 0x04)."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 65536))  # an Ogg page is at most 65,307 bytes
        tail = fh.read()
    at = tail.rfind(b"OggS")
    return at >= 0 and at + 5 < len(tail) and bool(tail[at + 5] & 0x04)


def _sf_open(path: Path) -> sf.SoundFile:
    with quiet_native_stderr():  # libsndfile tries libmpg123 on MPEG-looking data, which chatters
        return sf.SoundFile(str(path))


def _sf_info(path: Path, handle: sf.SoundFile | None = None) -> SourceInfo:
    if handle is not None:
        info: sf.SoundFile | sf._SoundFileInfo = handle
    else:
        with quiet_native_stderr():
            info = sf.info(str(path))
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioDecodeError(path, "header has no valid sample rate or channel count")
    problem = rate_problem(info.samplerate)
    if problem:
        raise AudioDecodeError(path, problem)
    truncated = _truncation(path, info)
    if truncated:
        raise AudioDecodeError(path, truncated, Reason.TRUNCATED)
    return SourceInfo(str(path), info.format, info.subtype, info.samplerate, info.channels, info.frames)


def probe(path: str | Path) -> SourceInfo:
    """Read the header only: format, codec, rate, channels and frame count."""
    path = Path(path)
    _check_file(path)
    try:
        return _sf_info(path)
    except AudioDecodeError:
        raise
    except Exception as sf_exc:
        try:
            return av_info(path)
        except AudioDecodeError as av_exc:
            raise AudioDecodeError(path, _decode_reason(path, sf_exc, av_exc)) from None


def _finish(path: Path, data: np.ndarray, info: SourceInfo, sr: int | None, mono: bool) -> Audio:
    if data.shape[0] == 0:
        raise AudioDecodeError(path, "no audio frames", Reason.EMPTY)
    # The sum is one pass with no temporary and is finite unless a sample is not (or the sum
    # overflows, which the exact test then clears).
    if not math.isfinite(float(data.sum())) and not np.isfinite(data).all():
        raise AudioDecodeError(path, "contains non-finite samples (NaN or inf)", Reason.NON_FINITE)
    audio = Audio(np.ascontiguousarray(data, dtype=np.float32), info.sample_rate, info)
    if audio.channels == 1:
        # A 1-channel file is returned as (frames,) whatever ``mono`` says: one shape per channel count.
        # The column of a C-ordered (frames, 1) array is already contiguous: a view, no mean() pass.
        audio = Audio(audio.samples.reshape(-1), info.sample_rate, info)
    elif mono:
        audio = Audio(audio.samples.mean(axis=1, dtype=np.float32), info.sample_rate, info)
    if sr is not None and sr != audio.sample_rate:
        audio = Audio(resample(audio.samples, audio.sample_rate, sr), sr, info)
    return audio


def _decode_reason(path: Path, sf_exc: Exception, av_exc: AudioDecodeError) -> str:
    """One reason when neither decoder could read the file: the one that owns the suffix speaks."""
    if _looks_like_text(path):
        return "not audio: the file holds text"
    if "no audio stream" in av_exc.reason:
        return "not audio: no audio stream found"
    if path.suffix.lower() in _SF_WRITE:
        return _sf_reason(sf_exc)
    return av_exc.reason


def load(
    path: str | Path,
    sr: int | None = None,
    mono: bool = True,
    offset: float = 0.0,
    duration: float | None = None,
) -> Audio:
    """Decode ``path`` (any format soundfile or FFmpeg reads) into float32 samples.

    ``sr`` resamples (soxr), ``mono`` averages the channels, ``offset``/``duration`` (seconds) read
    a part. Raises :class:`AudioDecodeError` (file named, reason given) for missing, empty,
    truncated, garbage or non-audio files and for NaN/inf content.
    """
    path = Path(path)
    _check_file(path)
    if offset < 0 or (duration is not None and duration < 0):
        raise ValueError("offset and duration must be >= 0")
    if path.suffix.lower() == ".flac" and offset == 0 and duration is None:
        decoded = read_flac(path)
        if decoded is not None:
            data, info = decoded
            _check_complete(path, data.shape[0], info, info.frames)
            return _finish(path, data, info, sr, mono)
    try:
        # One open for the header and the samples (sf.info then sf.read would parse the file twice).
        handle = _sf_open(path)
    except Exception as sf_exc:
        try:
            data, info = av_decode(path)
        except AudioDecodeError as av_exc:
            raise AudioDecodeError(path, _decode_reason(path, sf_exc, av_exc)) from None
        start = round(offset * info.sample_rate)
        stop = None if duration is None else start + round(duration * info.sample_rate)
        return _finish(path, data[start:stop], info, sr, mono)

    with handle:
        info = _sf_info(path, handle)
        start = round(offset * info.sample_rate)
        frames = -1 if duration is None else round(duration * info.sample_rate)
        try:
            with quiet_native_stderr():
                if start:
                    handle.seek(min(start, max(0, info.frames)))
                data = handle.read(frames, dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioDecodeError(path, f"cannot decode: {_sf_reason(exc)}") from None
    expected = max(0, info.frames - start) if frames < 0 else min(frames, max(0, info.frames - start))
    _check_complete(path, data.shape[0], info, expected)
    return _finish(path, data, info, sr, mono)


def _check_complete(path: Path, decoded: int, info: SourceInfo, expected: int) -> None:
    """Raise when fewer frames decoded than the header promised.

    libsndfile and dr_flac hand back what they could read from a cut-off file without an error;
    comparing with the header's frame count reports a truncated file instead of silently shortening it.
    MP3 frame counts come from the Xing/LAME header and may be off by the encoder's padding.
    """
    slack = max(2 * 1152, expected // 100) if info.format == "MP3" else 0
    if info.frames > 0 and decoded < expected - slack:
        raise AudioDecodeError(
            path, f"truncated: header promises {expected} frames, only {decoded} decoded", Reason.TRUNCATED
        )


def blocks(path: str | Path, seconds: float = 30.0, sr: int | None = None, mono: bool = True) -> Iterator[Block]:
    """Yield ``path`` in consecutive blocks of ``seconds`` without holding the whole file.

    Memory stays at about one block whatever the file length. With ``sr``, each block is resampled
    by one streaming soxr resampler, so joins are seamless.
    """
    import soxr

    path = Path(path)
    if seconds <= 0:
        raise ValueError("seconds must be > 0")
    info = probe(path)
    stream: soxr.ResampleStream | None = None
    out_rate = sr or info.sample_rate
    if sr is not None and sr != info.sample_rate:
        channels = 1 if mono else info.channels
        stream = soxr.ResampleStream(info.sample_rate, sr, channels, dtype="float32")
    start = 0
    index = 0
    for raw, last in _raw_blocks(path, info, int(seconds * info.sample_rate)):
        if not np.isfinite(raw).all():
            raise AudioDecodeError(
                path, f"contains non-finite samples (NaN or inf) near {start / out_rate:.1f}s", Reason.NON_FINITE
            )
        # One channel is its own mean (the same values), without a pass over it.
        data = (raw[:, 0] if raw.shape[1] == 1 else raw.mean(axis=1, dtype=np.float32)) if mono else raw
        if stream is not None:
            data = stream.resample_chunk(data, last=last)
        if data.shape[0] == 0:
            continue
        yield Block(index, start, np.ascontiguousarray(data, dtype=np.float32), out_rate)
        start += data.shape[0]
        index += 1
    if index == 0:
        raise AudioDecodeError(path, "no audio frames", Reason.EMPTY)


def _raw_blocks(path: Path, info: SourceInfo, frames: int) -> Iterator[tuple[np.ndarray, bool]]:
    """(frames, channels) float32 blocks at the file's own rate; ``last`` marks the final one."""
    pending: np.ndarray | None = None
    for chunk in _decode_stream(path, info, frames):
        if pending is not None:
            yield pending, False
        pending = chunk
    if pending is not None:
        yield pending, True


def _decode_stream(path: Path, info: SourceInfo, frames: int) -> Iterator[np.ndarray]:
    try:
        handle = _sf_open(path)
    except Exception:
        handle = None
    if handle is not None:
        decoded = 0
        with handle:
            try:
                for block in quietly(handle.blocks(blocksize=frames, dtype="float32", always_2d=True)):
                    decoded += block.shape[0]
                    yield block
            except Exception as exc:
                raise AudioDecodeError(path, f"cannot decode: {_sf_reason(exc)}") from None
        _check_complete(path, decoded, info, info.frames)
        return
    yield from av_blocks(path, info.channels, frames)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) that is renamed onto ``path`` on success.

    The name is unique (pid + random token) but the file is not created: the writer creates it,
    which saves one file creation per output (measurable when a dataset writes 100k clips).
    """
    path = Path(path)
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{os.urandom(4).hex()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """``text`` as UTF-8 at ``path``, whole or not at all (reports, metadata, run records)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _sf_write(tmp: Path, audio: Audio, fmt: str, subtype: str) -> None:
    if audio.samples.size > _IN_MEMORY_SAMPLES:
        sf.write(str(tmp), audio.samples, audio.sample_rate, subtype=subtype, format=fmt)
        return
    # libsndfile fsyncs every file it closes (sf_write_sync), which halves the write rate of a
    # dataset of short clips; encoding in memory and writing the bytes skips that per-file sync.
    buffer = io.BytesIO()
    sf.write(buffer, audio.samples, audio.sample_rate, subtype=subtype, format=fmt)
    with open(tmp, "xb") as fh:
        fh.write(buffer.getbuffer())


@contextlib.contextmanager
def open_writer(
    path: str | Path, sample_rate: int, channels: int = 1, subtype: str | None = None
) -> Iterator[sf.SoundFile]:
    """A streaming writer for wav/flac/ogg/mp3/aiff (by suffix), atomic: the file appears on success only.

    For outputs too long to hold: write blocks as they are made; the temp file is renamed onto
    ``path`` when the block ends without an error and deleted otherwise.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _SF_WRITE:
        known = ", ".join(sorted(_SF_WRITE))
        raise AudioEncodeError(path, f"cannot stream {suffix or '(no suffix)'}; use one of {known}")
    fmt, default_subtype = _SF_WRITE[suffix]
    problem = rate_problem(sample_rate)
    if problem:
        raise AudioEncodeError(path, problem)
    with atomic_path(path) as tmp:
        try:
            handle = sf.SoundFile(str(tmp), "w", sample_rate, channels, subtype or default_subtype, format=fmt)
        except Exception as exc:
            raise AudioEncodeError(path, f"cannot write {fmt}: {exc}") from None
        with handle:
            yield handle


def save(path: str | Path, audio: Audio, subtype: str | None = None) -> Path:
    """Write ``audio`` to ``path``, the format chosen by the suffix; atomic (temp file + rename).

    wav/flac/ogg/mp3/aiff go through libsndfile (``subtype`` e.g. ``PCM_24``, ``FLOAT``);
    m4a/aac/mp4/opus/webm/mka through PyAV.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if audio.frames == 0:
        raise AudioEncodeError(path, "no samples to write")
    if not np.isfinite(audio.samples).all():
        raise AudioEncodeError(path, "samples contain NaN or inf")
    problem = rate_problem(audio.sample_rate)
    if problem:
        raise AudioEncodeError(path, problem)
    if suffix in _SF_WRITE:
        fmt, default_subtype = _SF_WRITE[suffix]
        with atomic_path(path) as tmp:
            try:
                _sf_write(tmp, audio, fmt, subtype or default_subtype)
            except Exception as exc:
                raise AudioEncodeError(path, f"cannot write {fmt}: {exc}") from None
    elif suffix in AV_WRITE:
        with atomic_path(path) as tmp:
            av_encode(tmp, path, audio, *AV_WRITE[suffix])
    else:
        known = ", ".join(sorted({*_SF_WRITE, *AV_WRITE}))
        raise AudioEncodeError(path, f"unknown output format {suffix or '(no suffix)'}; use one of {known}")
    return path
