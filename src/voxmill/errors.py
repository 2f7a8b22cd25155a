"""The one exception tree of voxmill.

Every error voxmill raises on purpose derives from :class:`VoxmillError`, so callers (and the CLI)
can catch one type and print its one-line message::

    VoxmillError
    ├── AudioError
    │   ├── AudioDecodeError      a file cannot be read as audio (empty, truncated, garbage, NaN/inf)
    │   └── AudioEncodeError      audio cannot be written in the requested format
    ├── DatasetError              a corpus or metadata row is unusable
    │   └── NotReady              the readiness gate (voxmill check) stopped a training run
    ├── ModelError
    │   ├── ModelNotFound         no model of that name is known
    │   ├── ModelTooLarge         a model does not fit the memory budget
    │   └── ModelLoadError        a model's files exist but cannot be loaded
    ├── ConfigError               a bad setting: names the key and the reason
    │   └── OutputError           the output overlaps an input, is held by another run, or holds an earlier run
    └── MissingExtraError         an optional dependency is not installed: names the extra

Every error carries a :class:`Reason` code (``exc.code``): reports, the engine's ``Failed`` outcomes
and the CLI group and branch on it, never on message text or exception type names.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "AudioDecodeError",
    "AudioEncodeError",
    "AudioError",
    "ConfigError",
    "DatasetError",
    "NotReady",
    "MissingExtraError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFound",
    "ModelTooLarge",
    "OutputError",
    "ProcessingError",
    "Reason",
    "VoxmillError",
]


class Reason(StrEnum):
    """Why something failed, as a code: the part of an error other layers may branch on.

    The values are stable strings: they are written to reports (``report.jsonl``) and journals.
    """

    ERROR = "error"  # an unexpected exception (a bug, or a library's own error)
    MISSING = "missing"  # the file does not exist
    UNREADABLE = "unreadable"  # exists but cannot be read (permissions, a folder, a pipe)
    EMPTY = "empty"  # 0 bytes, or no audio frames
    DECODE = "decode"  # not decodable as audio: garbage, unsupported, bad header
    TRUNCATED = "truncated"  # fewer frames than the header promises
    NON_FINITE = "non_finite"  # NaN or inf samples
    ENCODE = "encode"  # audio cannot be written
    DATASET = "dataset"  # a corpus, metadata file or row is unusable
    MODEL = "model"  # a model cannot be found, loaded or fitted
    CONFIG = "config"  # a bad setting or option
    OUTPUT = "output"  # the output is unusable (overlap, held, an earlier run's)
    MISSING_EXTRA = "missing_extra"  # an optional dependency is not installed
    PROCESSING = "processing"  # work on valid input failed
    TIMEOUT = "timeout"  # the item ran longer than the run's timeout
    WORKER_DIED = "worker_died"  # the worker running it died (twice: it is retried once)
    TRANSPORT = "transport"  # the item or its result cannot be sent between processes


class VoxmillError(Exception):
    """Base of every error voxmill raises on purpose; its message is one line for the user.
    ``code`` is its :class:`Reason`; a subclass sets its own, an instance may refine it."""

    code: Reason = Reason.ERROR

    def __reduce__(self) -> tuple[Any, tuple[type[VoxmillError], str, dict[str, Any]]]:
        # Errors cross process boundaries (worker -> parent). Exception pickles only ``args``, which
        # subclasses with their own __init__ (path + reason, module + extra) cannot be rebuilt from:
        # rebuild from the message and the attributes instead, for every subclass at once.
        return _rebuild, (type(self), str(self), dict(self.__dict__))


def _rebuild(cls: type[VoxmillError], message: str, state: dict[str, Any]) -> VoxmillError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class AudioError(VoxmillError):
    """Something is wrong with audio data or an audio file."""


class AudioDecodeError(AudioError):
    """A file cannot be decoded as audio. ``path``, ``reason`` (the line) and ``code`` (its kind:
    missing, unreadable, empty, decode, truncated, non_finite) are kept for reports."""

    code = Reason.DECODE

    def __init__(self, path: str | Path, reason: str, code: Reason = Reason.DECODE) -> None:
        self.path = str(path)
        self.code = code
        # Decoder libraries put newlines and trailing dots in their messages; one line is the contract.
        self.reason = " ".join(str(reason).split()).rstrip(".")
        super().__init__(f"{self.path}: {self.reason}")


class AudioEncodeError(AudioError):
    """Audio cannot be written to the requested path or format."""

    code = Reason.ENCODE

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = " ".join(str(reason).split()).rstrip(".")
        super().__init__(f"{self.path}: {self.reason}")


class DatasetError(VoxmillError):
    """A corpus, metadata file or row cannot be used."""

    code = Reason.DATASET


class NotReady(DatasetError):
    """The readiness gate said NOT READY: nothing was trained (the message names the report)."""


class ModelError(VoxmillError):
    """A model cannot be found, loaded or fitted into memory."""

    code = Reason.MODEL


class ModelNotFound(ModelError):
    """No model of the given name is known."""


class ModelTooLarge(ModelError):
    """A model does not fit the memory budget even after evicting idle models. ``in_use``: the budget is
    held by models in use (a retry later may fit); False: the model is bigger than the whole budget."""

    in_use: bool = False


class ModelLoadError(ModelError):
    """A model's files exist but loading them failed."""


class ConfigError(VoxmillError):
    """A setting is unknown or has a bad value; the message names the key and the reason."""

    code = Reason.CONFIG


class OutputError(ConfigError):
    """The output cannot be used as given (a usage error, exit 2): it is an input or overlaps one,
    another voxmill run is writing it, or an earlier run's files are there and neither ``--resume``
    nor ``--overwrite`` was given."""

    code = Reason.OUTPUT


class MissingExtraError(VoxmillError):
    """An optional dependency is missing; the message says which extra installs it."""

    code = Reason.MISSING_EXTRA

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(f"{module} is not installed; install it with: pip install 'voxmill[{extra}]'")


class ProcessingError(VoxmillError):
    """Work on valid input failed (e.g. ``convert --strict`` with chunks the processor could not do)."""

    code = Reason.PROCESSING
