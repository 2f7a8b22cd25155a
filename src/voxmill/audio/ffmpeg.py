"""The FFmpeg side of audio I/O (PyAV): m4a/aac/opus/webm and anything libsndfile cannot read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

# errors is the one exception tree every layer raises from; imported via the package root.
from voxmill import errors
from voxmill.audio.resample import resample
from voxmill.audio.types import Audio, SourceInfo, rate_problem

AudioDecodeError = errors.AudioDecodeError
AudioEncodeError = errors.AudioEncodeError

# Suffixes written through PyAV: container format, codec, sample rates the codec accepts (None: any).
AV_WRITE: dict[str, tuple[str, str, tuple[int, ...] | None]] = {
    ".m4a": ("ipod", "aac", None),
    ".aac": ("adts", "aac", None),
    ".mp4": ("mp4", "aac", None),
    ".opus": ("opus", "libopus", (48000, 24000, 16000, 12000, 8000)),
    ".webm": ("webm", "libopus", (48000, 24000, 16000, 12000, 8000)),
    ".mka": ("matroska", "flac", None),
}
AV_FORMAT_NAMES = {"mov": "MP4", "matroska": "MATROSKA", "ogg": "OGG", "aac": "AAC"}


def av_info(path: Path) -> SourceInfo:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioDecodeError(path, "no audio stream in file")
            stream = container.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            channels = int(stream.codec_context.channels or 0)
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000
            else:
                seconds = 0.0
            # FFmpeg names demuxers by family ("mov,mp4,m4a,..."); show what users call the file.
            fmt = AV_FORMAT_NAMES.get(container.format.name.split(",")[0], container.format.name.split(",")[0].upper())
            codec = stream.codec_context.name.upper()
    except AudioDecodeError:
        raise
    except Exception as exc:  # PyAV raises a zoo of FFmpeg error types
        raise AudioDecodeError(path, av_reason(exc)) from None
    if rate <= 0 or channels <= 0:
        raise AudioDecodeError(path, "audio stream has no valid sample rate or channel count")
    problem = rate_problem(rate)
    if problem:
        raise AudioDecodeError(path, problem)
    return SourceInfo(str(path), fmt, codec, rate, channels, round(seconds * rate))


def av_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"cannot decode: {text}"


def av_decode(path: Path) -> tuple[np.ndarray, SourceInfo]:
    """Decode the first audio stream into float32 ``(frames, channels)``."""
    info = av_info(path)
    parts = list(av_blocks(path, info.channels, 1 << 62))  # one block: the whole stream
    data = np.concatenate(parts) if parts else np.zeros((0, info.channels), np.float32)
    return data, info


def av_blocks(path: Path, channels: int, frames: int) -> Iterator[np.ndarray]:
    """Decoded (frames, channels) float32 blocks of ``frames`` each (the last may be shorter)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout=stream.layout, rate=stream.rate)
            buffered: list[np.ndarray] = []
            count = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    buffered.append(out.to_ndarray().reshape(-1, channels))
                    count += buffered[-1].shape[0]
                while count >= frames:
                    joined = np.concatenate(buffered)
                    yield joined[:frames]
                    buffered, count = [joined[frames:]], joined.shape[0] - frames
            for out in resampler.resample(None):
                buffered.append(out.to_ndarray().reshape(-1, channels))
            if buffered:
                tail = np.concatenate(buffered)
                for begin in range(0, tail.shape[0], frames):
                    yield tail[begin : begin + frames]
    except AudioDecodeError:
        raise
    except Exception as exc:
        raise AudioDecodeError(path, av_reason(exc)) from None


def av_encode(
    tmp: Path, path: Path, audio: Audio, container_format: str, codec: str, rates: tuple[int, ...] | None
) -> None:
    import av

    samples = audio.samples.reshape(audio.frames, -1)
    rate = audio.sample_rate
    if rates is not None and rate not in rates:
        # Opus only runs at a few fixed rates; pick the lowest one that keeps the full band.
        target = min((r for r in rates if r >= rate), default=max(rates))
        samples = resample(samples, rate, target).reshape(-1, samples.shape[1])
        rate = target
    layout = "mono" if samples.shape[1] == 1 else "stereo" if samples.shape[1] == 2 else None
    if layout is None:
        raise AudioEncodeError(path, f"{codec} output supports 1 or 2 channels, got {samples.shape[1]}")
    try:
        with av.open(str(tmp), "w", format=container_format) as container:
            stream = container.add_stream(codec, rate=rate, layout=layout)
            if not isinstance(stream, av.AudioStream):
                raise AudioEncodeError(path, f"{codec} did not give an audio stream")
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples.T.reshape(1, -1) if layout == "mono" else samples.reshape(1, -1)),
                format="flt",
                layout=layout,
            )
            frame.sample_rate = rate
            resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
            for converted in resampler.resample(frame):
                for packet in stream.encode(converted):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    except AudioEncodeError:
        raise
    except Exception as exc:
        raise AudioEncodeError(path, f"cannot encode {codec}: {exc}") from None
