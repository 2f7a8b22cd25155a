"""voxmill: a parallel voice-processing workbench (library, ``voxmill`` CLI, HTTP server).

The public API is what ``__all__`` lists; everything else may change between releases.
"""

from voxmill.audio import (
    Audio,
    AudioStats,
    Block,
    FileReport,
    Segment,
    SourceInfo,
    VadOptions,
    analyze,
    blocks,
    describe,
    integrated_lufs,
    load,
    normalize,
    probe,
    resample,
    save,
    speech_ratio,
    speech_segments,
)
from voxmill.config import Settings, load_settings
from voxmill.errors import (
    AudioDecodeError,
    AudioEncodeError,
    AudioError,
    ConfigError,
    DatasetError,
    MissingExtraError,
    ModelError,
    ModelLoadError,
    ModelNotFound,
    ModelTooLarge,
    VoxmillError,
)

__version__ = "0.1.0"

__all__ = [
    "Audio",
    "AudioDecodeError",
    "AudioEncodeError",
    "AudioError",
    "AudioStats",
    "Block",
    "ConfigError",
    "DatasetError",
    "FileReport",
    "MissingExtraError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFound",
    "ModelTooLarge",
    "Segment",
    "Settings",
    "SourceInfo",
    "VadOptions",
    "VoxmillError",
    "__version__",
    "analyze",
    "blocks",
    "describe",
    "integrated_lufs",
    "load",
    "load_settings",
    "normalize",
    "probe",
    "resample",
    "save",
    "speech_ratio",
    "speech_segments",
]
