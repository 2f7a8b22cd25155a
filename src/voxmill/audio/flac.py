"""FLAC decoding with dr_flac (miniaudio): half the CPU of libsndfile's FLAC path.

Measured on 2.7-s 44.1 kHz 16-bit clips: 0.70 ms per clip against 1.27 ms for ``soundfile.read``,
with bit-identical samples. FLAC is what HF datasets and studio corpora ship, and decoding is most
of the per-clip cost of ``prepare`` and ``check``. Anything dr_flac cannot read falls back to
libsndfile, whose messages name the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxmill.audio.types import SourceInfo, rate_problem

__all__ = ["read_flac"]

# libsndfile's names for the sample formats, so SourceInfo reads the same whichever decoder ran.
_SUBTYPES = {
    "UNSIGNED8": "PCM_U8",
    "SIGNED16": "PCM_16",
    "SIGNED24": "PCM_24",
    "SIGNED32": "PCM_32",
    "FLOAT32": "FLOAT",
}


def read_flac(path: Path) -> tuple[np.ndarray, SourceInfo] | None:
    """``(frames, channels)`` float32 samples and the header's facts, or None if dr_flac cannot read it.

    The samples may be fewer than the header's frame count (a cut-off or damaged file): the caller
    compares, as it does for libsndfile.
    """
    import miniaudio  # on first FLAC: it imports urllib and http (25 ms) for its streaming API

    name = str(path)
    try:
        head = miniaudio.flac_get_file_info(name)
        if head.sample_format == miniaudio.SampleFormat.SIGNED16:
            # 16-bit samples decode exactly as int16; scaling to float32 here is cheaper than dr_flac's.
            pcm = miniaudio.flac_read_file_s16(name)
            data = np.frombuffer(pcm.samples, dtype=np.int16).astype(np.float32)
            data *= np.float32(1 / 32768)
        else:
            pcm = miniaudio.flac_read_file_f32(name)
            data = np.frombuffer(pcm.samples, dtype=np.float32)
    except (miniaudio.MiniaudioError, OSError, ValueError):
        return None
    if pcm.nchannels <= 0 or rate_problem(pcm.sample_rate):
        return None  # libsndfile reads the header again and names the reason
    info = SourceInfo(
        name, "FLAC", _SUBTYPES.get(head.sample_format.name, "PCM_16"), pcm.sample_rate, pcm.nchannels, head.num_frames
    )
    return data.reshape(-1, pcm.nchannels), info
