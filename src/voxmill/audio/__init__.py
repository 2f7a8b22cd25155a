"""Audio leaves: I/O, resampling, loudness, analysis, VAD. Imports nothing else of voxmill but errors."""

from voxmill.audio.analysis import AudioStats, analyze
from voxmill.audio.describe import FileReport, describe
from voxmill.audio.io import Audio, Block, SourceInfo, blocks, load, open_writer, probe, save
from voxmill.audio.loudness import integrated_lufs, normalize
from voxmill.audio.resample import resample
from voxmill.audio.vad import Segment, VadOptions, speech_ratio, speech_segments

__all__ = [
    "Audio",
    "AudioStats",
    "Block",
    "FileReport",
    "Segment",
    "SourceInfo",
    "VadOptions",
    "analyze",
    "blocks",
    "describe",
    "integrated_lufs",
    "load",
    "normalize",
    "open_writer",
    "probe",
    "resample",
    "save",
    "speech_ratio",
    "speech_segments",
]
