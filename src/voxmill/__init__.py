"""voxmill: a parallel voice-processing workbench (library, ``voxmill`` CLI, HTTP server).

The public API is what ``__all__`` lists; everything else may change between releases. Names are
imported on first use (PEP 562), so ``import voxmill.engine`` in a fresh worker process does not
pay for the audio stack it may never touch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "voxmill.audio": [
        "Audio", "AudioStats", "Block", "FileReport", "Segment", "SourceInfo", "VadOptions", "analyze", "blocks",
        "describe", "integrated_lufs", "load", "normalize", "probe", "resample", "save", "speech_ratio",
        "speech_segments",
    ],
    "voxmill.config": ["Settings", "load_settings"],
    "voxmill.engine": ["Drop", "Journal", "Outcome", "Pool", "Task", "WorkerContext"],
    "voxmill.errors": [
        "AudioDecodeError", "AudioEncodeError", "AudioError", "ConfigError", "DatasetError", "MissingExtraError",
        "ModelError", "ModelLoadError", "ModelNotFound", "ModelTooLarge", "ProcessingError", "VoxmillError",
    ],
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "Audio",
    "AudioDecodeError",
    "AudioEncodeError",
    "AudioError",
    "AudioStats",
    "Block",
    "ConfigError",
    "DatasetError",
    "Drop",
    "FileReport",
    "Journal",
    "MissingExtraError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFound",
    "ModelTooLarge",
    "Outcome",
    "Pool",
    "ProcessingError",
    "Segment",
    "Settings",
    "SourceInfo",
    "Task",
    "VadOptions",
    "VoxmillError",
    "WorkerContext",
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

if TYPE_CHECKING:  # static types for the lazy names below
    from voxmill.audio.analysis import AudioStats as AudioStats
    from voxmill.audio.analysis import analyze as analyze
    from voxmill.audio.describe import FileReport as FileReport
    from voxmill.audio.describe import describe as describe
    from voxmill.audio.io import Audio as Audio
    from voxmill.audio.io import Block as Block
    from voxmill.audio.io import SourceInfo as SourceInfo
    from voxmill.audio.io import blocks as blocks
    from voxmill.audio.io import load as load
    from voxmill.audio.io import probe as probe
    from voxmill.audio.io import save as save
    from voxmill.audio.loudness import integrated_lufs as integrated_lufs
    from voxmill.audio.loudness import normalize as normalize
    from voxmill.audio.resample import resample as resample
    from voxmill.audio.vad import Segment as Segment
    from voxmill.audio.vad import VadOptions as VadOptions
    from voxmill.audio.vad import speech_ratio as speech_ratio
    from voxmill.audio.vad import speech_segments as speech_segments
    from voxmill.config import Settings as Settings
    from voxmill.config import load_settings as load_settings
    from voxmill.engine import Drop as Drop
    from voxmill.engine import Journal as Journal
    from voxmill.engine import Outcome as Outcome
    from voxmill.engine import Pool as Pool
    from voxmill.engine import Task as Task
    from voxmill.engine import WorkerContext as WorkerContext
    from voxmill.errors import AudioDecodeError as AudioDecodeError
    from voxmill.errors import AudioEncodeError as AudioEncodeError
    from voxmill.errors import AudioError as AudioError
    from voxmill.errors import ConfigError as ConfigError
    from voxmill.errors import DatasetError as DatasetError
    from voxmill.errors import MissingExtraError as MissingExtraError
    from voxmill.errors import ModelError as ModelError
    from voxmill.errors import ModelLoadError as ModelLoadError
    from voxmill.errors import ModelNotFound as ModelNotFound
    from voxmill.errors import ModelTooLarge as ModelTooLarge
    from voxmill.errors import ProcessingError as ProcessingError
    from voxmill.errors import VoxmillError as VoxmillError


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'voxmill' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
