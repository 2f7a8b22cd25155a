"""The one exception tree of voxmill.

Every error voxmill raises on purpose derives from :class:`VoxmillError`, so callers (and the CLI)
can catch one type and print its one-line message::

    VoxmillError
    ├── AudioError
    │   ├── AudioDecodeError      a file cannot be read as audio (empty, truncated, garbage, NaN/inf)
    │   └── AudioEncodeError      audio cannot be written in the requested format
    ├── DatasetError              a corpus or metadata row is unusable
    ├── ModelError
    │   ├── ModelNotFound         no model of that name is known
    │   ├── ModelTooLarge         a model does not fit the memory budget
    │   └── ModelLoadError        a model's files exist but cannot be loaded
    ├── ConfigError               a bad setting: names the key and the reason
    │   └── OutputError           the output overlaps an input, is held by another run, or holds an earlier run
    └── MissingExtraError         an optional dependency is not installed: names the extra
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "AudioDecodeError",
    "AudioEncodeError",
    "AudioError",
    "ConfigError",
    "DatasetError",
    "MissingExtraError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFound",
    "ModelTooLarge",
    "OutputError",
    "ProcessingError",
    "VoxmillError",
]


class VoxmillError(Exception):
    """Base of every error voxmill raises on purpose; its message is one line for the user."""


class AudioError(VoxmillError):
    """Something is wrong with audio data or an audio file."""


class AudioDecodeError(AudioError):
    """A file cannot be decoded as audio. ``path`` and ``reason`` are kept for reports."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        # Decoder libraries put newlines and trailing dots in their messages; one line is the contract.
        self.reason = " ".join(str(reason).split()).rstrip(".")
        super().__init__(f"{self.path}: {self.reason}")


class AudioEncodeError(AudioError):
    """Audio cannot be written to the requested path or format."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split()).rstrip(".")
        super().__init__(f"{self.path}: {self.reason}")


class DatasetError(VoxmillError):
    """A corpus, metadata file or row cannot be used."""


class ModelError(VoxmillError):
    """A model cannot be found, loaded or fitted into memory."""


class ModelNotFound(ModelError):
    """No model of the given name is known."""


class ModelTooLarge(ModelError):
    """A model does not fit the memory budget even after evicting idle models."""


class ModelLoadError(ModelError):
    """A model's files exist but loading them failed."""


class ConfigError(VoxmillError):
    """A setting is unknown or has a bad value; the message names the key and the reason."""


class OutputError(ConfigError):
    """The output cannot be used as given (a usage error, exit 2): it is an input or overlaps one,
    another voxmill run is writing it, or an earlier run's files are there and neither ``--resume``
    nor ``--overwrite`` was given."""


class MissingExtraError(VoxmillError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(f"{module} is not installed; install it with: pip install 'voxmill[{extra}]'")


class ProcessingError(VoxmillError):
    """Work on valid input failed (e.g. ``convert --strict`` with chunks the processor could not do)."""
