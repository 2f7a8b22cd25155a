"""voxmill: a parallel voice-processing workbench (library, ``voxmill`` CLI, HTTP server).

The public API is what ``__all__`` lists; everything else may change between releases. Each
application has one entry point, an options object in and a typed result out::

    voxmill.prepare_dataset(PrepareOptions)  -> PrepareResult   (voxmill.prepare.run)
    voxmill.check_dataset(CheckOptions)      -> Report          (voxmill.check.run)
    voxmill.convert_audio(ConvertOptions)    -> ConvertResult   (voxmill.convert.run)
    voxmill.synthesize(SynthOptions)         -> SynthResult     (voxmill.synth.run)
    voxmill.train_voice(TrainOptions)        -> TrainResult     (voxmill.train.run)
    voxmill.segment_recordings(SegmentOptions) -> SegmentResult (voxmill.segment.run)

and every application's options nest the engine's :class:`RunOptions` as ``.run``. Names are imported
on first use (``lazy_loader``, the one lazy-import mechanism of voxmill), so ``import voxmill.engine``
in a fresh worker process does not pay for the audio stack it may never touch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

__version__ = "0.1.0"

# Where each public name lives; lazy_loader imports the submodule on the first access of a name.
_EXPORTS = {
    "audio": [
        "Audio", "AudioStats", "Block", "FileReport", "Segment", "SourceInfo", "VadOptions", "analyze", "blocks",
        "describe", "integrated_lufs", "load", "normalize", "probe", "resample", "save", "speech_ratio",
        "speech_segments",
    ],
    "config": ["Settings", "load_settings"],
    "engine": ["Drop", "Journal", "Outcome", "Pool", "RunOptions", "Task", "WorkerContext"],
    "errors": [
        "AudioDecodeError", "AudioEncodeError", "AudioError", "ConfigError", "DatasetError", "MissingExtraError",
        "ModelError", "ModelLoadError", "ModelNotFound", "ModelTooLarge", "OutputError", "ProcessingError", "Reason",
        "VoxmillError",
    ],
    "models": ["ModelManager", "ModelSpec", "Registry", "VoiceConfig"],
    "prepare": ["PrepareOptions", "PrepareResult"],
    "check": ["CheckOptions", "Report"],
    "convert": ["ConvertOptions", "ConvertResult"],
    "synth": ["SynthOptions", "SynthResult"],
    "train": ["TrainOptions", "TrainResult"],
    "segment": ["SegmentOptions", "SegmentResult"],
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_ENTRY_POINTS = ["check_dataset", "convert_audio", "prepare_dataset", "segment_recordings", "synthesize", "train_voice"]

_lazy_getattr, _lazy_dir, _ = lazy_loader.attach(__name__, submod_attrs=_EXPORTS)

__all__ = sorted([*_WHERE, *_ENTRY_POINTS, "__version__"])

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
    from voxmill.check import CheckOptions as CheckOptions
    from voxmill.check import Report as Report
    from voxmill.config import Settings as Settings
    from voxmill.config import load_settings as load_settings
    from voxmill.convert import ConvertOptions as ConvertOptions
    from voxmill.convert import ConvertResult as ConvertResult
    from voxmill.engine import Drop as Drop
    from voxmill.engine import Journal as Journal
    from voxmill.engine import Outcome as Outcome
    from voxmill.engine import Pool as Pool
    from voxmill.engine import RunOptions as RunOptions
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
    from voxmill.errors import OutputError as OutputError
    from voxmill.errors import ProcessingError as ProcessingError
    from voxmill.errors import Reason as Reason
    from voxmill.errors import VoxmillError as VoxmillError
    from voxmill.models import ModelManager as ModelManager
    from voxmill.models import ModelSpec as ModelSpec
    from voxmill.models import Registry as Registry
    from voxmill.models import VoiceConfig as VoiceConfig
    from voxmill.prepare import PrepareOptions as PrepareOptions
    from voxmill.prepare import PrepareResult as PrepareResult
    from voxmill.segment import SegmentOptions as SegmentOptions
    from voxmill.segment import SegmentResult as SegmentResult
    from voxmill.synth import SynthOptions as SynthOptions
    from voxmill.synth import SynthResult as SynthResult
    from voxmill.train import TrainOptions as TrainOptions
    from voxmill.train import TrainResult as TrainResult


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 'voxmill' has no attribute {name!r}")
    value = _lazy_getattr(name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def prepare_dataset(options: PrepareOptions) -> PrepareResult:
    """Corpora -> a training-ready dataset (Piper folder, HF parquet, NeMo manifests); ``voxmill prepare``."""
    from voxmill.prepare import run

    return run(options)


def check_dataset(options: CheckOptions) -> Report:
    """A training-readiness report for a dataset and its Piper setup; ``voxmill check``."""
    from voxmill.check import run

    return run(options)


def convert_audio(options: ConvertOptions) -> ConvertResult:
    """Recordings through a processor (voice change, re-voicing) in parallel chunks; ``voxmill convert``."""
    from voxmill.convert import run

    return run(options)


def synthesize(options: SynthOptions) -> SynthResult:
    """Long texts spoken by a Piper voice, in parallel and resumable; ``voxmill synth``."""
    from voxmill.synth import run

    return run(options)


def train_voice(options: TrainOptions) -> TrainResult:
    """A Piper voice trained (or fine-tuned, or resumed) on a prepared dataset, gated, exported; ``voxmill train``."""
    from voxmill.train import run

    return run(options)


def segment_recordings(options: SegmentOptions) -> SegmentResult:
    """Long recordings (+ their book) -> text-aligned training clips in a dataset; ``voxmill segment``."""
    from voxmill.segment import run

    return run(options)
