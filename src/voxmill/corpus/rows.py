"""What the readers take and give: a :class:`Source` (path, labels, reader options) and one :class:`Row` per clip.

Labels become columns of the outputs, next to the columns voxmill writes itself; a label named like one
of those (``text``, ``audio_filepath``, ``audio``) would replace every row's transcript or audio path, or
break the parquet schema, so such names are refused before any work (``ConfigError``, exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from voxmill import errors
from voxmill.corpus.names import file_name

__all__ = ["AUDIO_SUFFIXES", "RESERVED_LABELS", "Problem", "Row", "Source", "Split", "check_label", "parse_source"]

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".aiff", ".aif")
# Every column a writer emits (Piper metadata, HF parquet, NeMo manifests) besides the labels.
RESERVED_LABELS = frozenset({"id", "audio", "text", "speaker", "duration", "audio_filepath"})
# ``SRC::audio_column=wav``: which parquet column holds what. Reader options, never labels.
COLUMN_KEYS = {"audio_column": "audio", "text_column": "text", "speaker_column": "speaker"}
SPEAKER_FROM_DIR = "speaker_from_dir"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class Problem(str, Enum):  # enum.StrEnum is 3.11+; voxmill supports 3.10
    """Why a row is unusable, as reports group it: a code, never parsed out of the message."""

    def __str__(self) -> str:
        return str(self.value)

    ENCODING = "not UTF-8"  # the line or transcript
    PARSE = "line does not fit the layout"
    MISSING_AUDIO = "audio file not found"
    OUTSIDE_ROOT = "outside the dataset root"  # the audio (or transcript), symlinks followed
    NO_TRANSCRIPT = "no transcript"
    TOO_LONG = "line or transcript too long"  # beyond MAX_LINE_BYTES: no clip's transcript
    UNREADABLE = "file cannot be read"  # a transcript the file system refuses (permissions)
    NO_AUDIO = "no audio bytes"  # a parquet row
    DUPLICATE_ID = "duplicate id"
    NAME_COLLISION = "output name collision"  # a case-folding file system would give it an earlier row's file


class Split(str, Enum):
    """Which part of a dataset a row belongs to: a Piper folder keeps validation rows in metadata_val.csv."""

    def __str__(self) -> str:
        return str(self.value)

    TRAIN = "train"
    VALIDATION = "validation"


def check_label(key: str, given_as: str) -> None:
    """Raise ConfigError if ``key`` may not be a label; ``given_as`` says where the user wrote it."""
    folded = key.strip().casefold()
    if folded in RESERVED_LABELS:
        raise errors.ConfigError(
            f"{given_as}: {key!r} is a column voxmill writes itself ({', '.join(sorted(RESERVED_LABELS))}); "
            "give the label another name"
        )
    if folded in COLUMN_KEYS:
        raise errors.ConfigError(
            f"{given_as}: {key!r} is not a label but a parquet reader option; give it per source: SRC::{folded}=COLUMN"
        )
    if folded == SPEAKER_FROM_DIR:
        raise errors.ConfigError(f"{given_as}: {key!r} is not a label; use --speaker-from-dir")


@dataclass(frozen=True)
class Source:
    """One ``SRC`` argument: a path, labels (``SRC::dialect=central``), format and reader options."""

    path: Path
    labels: dict[str, str] = field(default_factory=dict)
    format: str | None = None
    speaker_from_dir: bool = False  # folder sources: the first sub-folder names the speaker
    columns: dict[str, str] = field(default_factory=dict)  # parquet: {"audio"|"text"|"speaker": column}

    def __post_init__(self) -> None:
        for key in self.labels:
            check_label(key, f"{self.path}: label")
        unknown = set(self.columns) - set(COLUMN_KEYS.values())
        if unknown:
            raise errors.ConfigError(f"{self.path}: unknown column option {sorted(unknown)}; use {sorted(COLUMN_KEYS)}")


@dataclass(frozen=True)
class Row:
    """One input row. ``error`` set means the row itself is unusable (reported as failed), ``problem`` says why."""

    id: str
    source: str
    audio_path: str | None = None
    audio_bytes: bytes | None = None
    text: str = ""
    speaker: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    problem: Problem | None = None
    split: Split = Split.TRAIN  # a source without a validation part is all training rows

    @property
    def file_id(self) -> str:
        """The stem of this row's output files (``wavs/<file_id>.wav``): injective in the id, letters kept."""
        return file_name(self.id)


def _flag(value: str, given_as: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise errors.ConfigError(f"{given_as}: expected true or false, not {value!r}")


def parse_source(
    spec: str, labels: dict[str, str] | None = None, fmt: str | None = None, speaker_from_dir: bool = False
) -> Source:
    """``path::key=value::key2=value2`` -> Source. Global ``labels`` (``--label``) apply to every source."""
    path, *parts = spec.split("::")
    own = dict(labels or {})
    for key in own:
        check_label(key, f"--label {key}")
    columns: dict[str, str] = {}
    for part in parts:
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not key:
            raise errors.ConfigError(f"{spec}: label {part!r} is not key=value")
        if key in COLUMN_KEYS:
            columns[COLUMN_KEYS[key]] = value
        elif key == SPEAKER_FROM_DIR:
            speaker_from_dir = _flag(value, f"{spec}: {key}")
        else:
            check_label(key, f"{spec}: label {part!r}")
            own[key] = value
    return Source(Path(path).expanduser(), own, fmt, speaker_from_dir, columns)
