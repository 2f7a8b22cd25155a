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
        "ModelError", "ModelLoadError", "ModelNotFound", "ModelTooLarge", "VoxmillError",
    ],
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted([*_WHERE, "__version__"])

if TYPE_CHECKING:
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
    from voxmill.engine import Drop, Journal, Outcome, Pool, Task, WorkerContext
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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'voxmill' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
