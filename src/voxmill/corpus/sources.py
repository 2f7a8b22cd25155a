"""Corpus readers: every input row becomes one :class:`Row`, good or bad, never an exception.

Formats (auto-detected, or named with ``--source-format``):
  ljspeech   ``metadata.csv``: ``id|text``, ``id|text|normalized`` or ``id|speaker|text`` (told apart
             from the data), audio in ``wavs/`` by id (any audio suffix) or by relative path
  coqui      ``*.csv`` with header ``audio_file|text|...|speaker_name``
  commonvoice ``*.tsv`` with ``client_id``, ``path`` (under ``clips/``), ``sentence``, ``accents``, ``variant``
  folder     audio files with sidecar ``.txt``/``.lab`` transcripts, recursive
  parquet    files or folders of parquet with an audio struct<bytes, path> column and a text column
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from voxmill import errors

__all__ = ["AUDIO_SUFFIXES", "FORMATS", "Row", "Source", "parse_source", "read_rows"]

FORMATS = ("ljspeech", "coqui", "commonvoice", "folder", "parquet")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".aiff", ".aif")
MISSING_AUDIO = "audio file not found"  # how a row whose audio is missing starts its error
LAYOUT_SAMPLE = 2000  # metadata lines read to tell id|speaker|text from id|text|normalized
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Source:
    """One ``SRC`` argument: a path, optional labels (``SRC::dialect=central``), optional format."""

    path: Path
    labels: dict[str, str] = field(default_factory=dict)
    format: str | None = None


@dataclass(frozen=True)
class Row:
    """One input row. ``error`` set means the row itself is unusable (reported as failed)."""

    id: str
    source: str
    audio_path: str | None = None
    audio_bytes: bytes | None = None
    text: str = ""
    speaker: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def file_id(self) -> str:
        """The id made safe as a file name (folders and odd characters become ``_``)."""
        return _UNSAFE.sub("_", self.id).strip("._") or "clip"


def parse_source(spec: str, labels: dict[str, str] | None = None, fmt: str | None = None) -> Source:
    """``path::key=value::key2=value2`` -> Source. Global ``labels`` apply to every source."""
    path, *parts = spec.split("::")
    own = dict(labels or {})
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise errors.DatasetError(f"{spec}: label {part!r} is not key=value")
        own[key.strip()] = value.strip()
    return Source(Path(path).expanduser(), own, fmt)


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "metadata.csv").is_file():
            return "ljspeech"
        if any(path.glob("*.parquet")) or any(path.glob("*/*.parquet")):
            return "parquet"
        if any(path.glob("*.tsv")) and (path / "clips").is_dir():
            return "commonvoice"
        return "folder"
    if path.suffix == ".parquet":
        return "parquet"
    if path.suffix == ".tsv":
        return "commonvoice"
    if path.suffix in (".csv", ".txt"):
        with path.open("rb") as fh:
            head = fh.readline().decode("utf-8", "replace").strip().lower()
        return "coqui" if head.startswith("audio_file|") else "ljspeech"
    raise errors.DatasetError(f"{path}: cannot tell the corpus format; pass --source-format ({', '.join(FORMATS)})")


def read_rows(source: Source) -> tuple[Iterator[Row], str]:
    """Rows of a source and a one-line description of how it was read. Raises DatasetError if unreadable."""
    if not source.path.exists():
        raise errors.DatasetError(f"{source.path}: no such file or folder")
    fmt = source.format or detect_format(source.path)
    if fmt == "ljspeech":
        return _ljspeech(source)
    if fmt == "coqui":
        return _coqui(source), "coqui csv"
    if fmt == "commonvoice":
        return _commonvoice(source), "common voice tsv"
    if fmt == "folder":
        return _folder(source), "folder with sidecar transcripts"
    if fmt == "parquet":
        return _parquet(source), "parquet"
    raise errors.DatasetError(f"{source.path}: unknown source format {fmt!r}; use one of {', '.join(FORMATS)}")


def _lines(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """(line number, text or None if not UTF-8, reason) per non-empty line; one bad line spoils nothing else."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield number, None, f"line {number}: invalid UTF-8 ({exc.reason} at byte {exc.start})"
                continue
            if line.strip():
                yield number, line, ""


def _find_audio(folder: Path, ref: str) -> Path | None:
    """Audio for ``ref``: a relative path as given, else ``wavs/<ref>.<any audio suffix>``."""
    direct = folder / ref
    if direct.suffix.lower() in AUDIO_SUFFIXES and direct.is_file():
        return direct
    for base in (folder / "wavs", folder):
        for suffix in AUDIO_SUFFIXES:
            candidate = base / f"{ref}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def _ljspeech(source: Source) -> tuple[Iterator[Row], str]:
    meta = source.path / "metadata.csv" if source.path.is_dir() else source.path
    folder = meta.parent
    # The layout is told from the first lines, so a corpus of millions of rows is streamed, not held.
    sample = itertools.islice(_lines(meta), LAYOUT_SAMPLE)
    three = [line.split("|") for _, line, _ in sample if line is not None and line.count("|") == 2]
    layout = "id|text"
    if three:
        # id|speaker|text has few distinct, space-free second columns; id|text|normalized repeats the text.
        second = [cols[1].strip() for cols in three]
        speakerish = sum(1 for value in second if value and " " not in value) / len(second)
        layout = (
            "id|speaker|text"
            if speakerish > 0.9 and len(set(second)) <= max(1, len(second) // 2)
            else "id|text|normalized"
        )
    description = f"ljspeech metadata.csv read as {layout}"

    def rows() -> Iterator[Row]:
        for number, line, reason in _lines(meta):
            where = f"{meta}:{number}"
            if line is None:
                yield Row(f"{meta.name}:{number}", where, error=reason)
                continue
            cols = line.split("|")
            if len(cols) < 2:
                yield Row(f"{meta.name}:{number}", where, error=f"line {number}: no '|' delimiter")
                continue
            clip_id = cols[0].strip()
            speaker = None
            if len(cols) >= 3 and layout == "id|speaker|text":
                speaker, text = cols[1].strip(), "|".join(cols[2:])
            elif len(cols) >= 3:
                text = cols[2] if cols[2].strip() else cols[1]  # normalized text when present
            else:
                text = cols[1]
            audio = _find_audio(folder, clip_id)
            if audio is None:
                yield _missing(
                    clip_id, where, text, speaker, source.labels, f" for id {clip_id!r} (looked in {folder / 'wavs'})"
                )
                continue
            yield Row(clip_id, where, str(audio), text=text, speaker=speaker, labels=source.labels)

    return rows(), description


def _missing(row_id: str, where: str, text: str, speaker: str | None, labels: dict[str, str], detail: str) -> Row:
    """A row whose audio file is not there: kept (with its text) and failed with the reason."""
    return Row(row_id, where, text=text, speaker=speaker, labels=labels, error=f"{MISSING_AUDIO}{detail}")


def _coqui(source: Source) -> Iterator[Row]:
    folder = source.path.parent
    for row_id, where, record, error in _delimited(source.path, "|"):
        if error:
            yield Row(row_id, where, error=error)
            continue
        ref = (record.get("audio_file") or "").strip()
        text = record.get("text") or record.get("transcription") or ""
        speaker = (record.get("speaker_name") or "").strip() or None
        audio = folder / ref if ref else None
        if audio is None or not audio.is_file():
            yield _missing(ref or row_id, where, text, speaker, source.labels, f": {audio}")
            continue
        yield Row(ref, where, str(audio), text=text, speaker=speaker, labels=source.labels)


def _commonvoice(source: Source) -> Iterator[Row]:
    tsvs = sorted(source.path.glob("*.tsv")) if source.path.is_dir() else [source.path]
    for tsv in tsvs:
        clips = tsv.parent / "clips"
        for row_id, where, record, error in _delimited(tsv, "\t"):
            if error:
                yield Row(row_id, where, error=error)
                continue
            ref = (record.get("path") or "").strip()
            labels = dict(source.labels)
            for key in ("accents", "variant", "locale", "gender", "age"):
                if record.get(key):
                    labels.setdefault(key, record[key])
            audio = clips / ref
            row = Row(
                ref,
                where,
                str(audio),
                text=record.get("sentence") or "",
                speaker=(record.get("client_id") or "").strip() or None,
                labels=labels,
            )
            if not ref or not audio.is_file():
                row = _missing(ref or row_id, where, row.text, row.speaker, labels, f": {audio}")
            yield row


def _delimited(path: Path, delimiter: str) -> Iterator[tuple[str, str, dict[str, str], str | None]]:
    """Header-keyed records of a delimited file; bad lines come back with an error instead."""
    lines = _lines(path)
    try:
        _, header_line, reason = next(lines)
    except StopIteration:
        return
    if header_line is None:
        raise errors.DatasetError(f"{path}: header line is not UTF-8")
    header = [h.strip() for h in header_line.split(delimiter)]
    for number, line, reason in lines:
        where = f"{path}:{number}"
        row_id = f"{path.name}:{number}"
        if line is None:
            yield row_id, where, {}, reason
            continue
        values = next(csv.reader(io.StringIO(line), delimiter=delimiter, quoting=csv.QUOTE_NONE))
        if len(values) < 2:
            yield row_id, where, {}, f"line {number}: no {delimiter!r} delimiter"
            continue
        yield row_id, where, dict(zip(header, values, strict=False)), None


def _folder(source: Source) -> Iterator[Row]:
    root = source.path
    for audio in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        rel = audio.relative_to(root).with_suffix("")
        transcript = next((t for t in (audio.with_suffix(".txt"), audio.with_suffix(".lab")) if t.is_file()), None)
        speaker = rel.parts[0] if source.labels.get("speaker_from_dir") and len(rel.parts) > 1 else None
        labels = {k: v for k, v in source.labels.items() if k != "speaker_from_dir"}
        if transcript is None:
            yield Row(
                str(rel),
                str(audio),
                str(audio),
                speaker=speaker,
                labels=labels,
                error="no transcript (.txt or .lab) beside the audio",
            )
            continue
        try:
            text = transcript.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            yield Row(
                str(rel),
                str(audio),
                str(audio),
                speaker=speaker,
                labels=labels,
                error=f"{transcript.name}: invalid UTF-8",
            )
            continue
        yield Row(str(rel), str(audio), str(audio), text=text, speaker=speaker, labels=labels)


_TEXT_COLUMNS = ("text", "sentence", "transcription", "normalized_text")
_SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")


def _parquet(source: Source) -> Iterator[Row]:
    import pyarrow.parquet as pq

    files = sorted(source.path.rglob("*.parquet")) if source.path.is_dir() else [source.path]
    audio_col = source.labels.get("audio_column", "audio")
    labels = {k: v for k, v in source.labels.items() if not k.endswith("_column")}
    for file in files:
        try:
            parquet = pq.ParquetFile(file)
        except Exception as exc:
            raise errors.DatasetError(f"{file}: not a readable parquet file: {exc}") from None
        names = parquet.schema_arrow.names
        text_col = source.labels.get("text_column") or next((c for c in _TEXT_COLUMNS if c in names), None)
        speaker_col = source.labels.get("speaker_column") or next((c for c in _SPEAKER_COLUMNS if c in names), None)
        if audio_col not in names or text_col is None:
            raise errors.DatasetError(
                f"{file}: needs an {audio_col!r} column and a text column (one of {_TEXT_COLUMNS})"
            )
        index = 0
        for batch in parquet.iter_batches(batch_size=64, columns=[c for c in (audio_col, text_col, speaker_col) if c]):
            for record in batch.to_pylist():
                index += 1
                audio = record[audio_col] or {}
                ref = audio.get("path") or f"{file.stem}-{index:06d}"
                clip_id = Path(ref).stem if audio.get("path") else ref
                where = f"{file}:{index}"
                if not audio.get("bytes"):
                    yield Row(
                        clip_id, where, text=record[text_col] or "", labels=labels, error="row has no audio bytes"
                    )
                    continue
                speaker = str(record[speaker_col]) if speaker_col and record.get(speaker_col) is not None else None
                yield Row(
                    clip_id,
                    where,
                    audio_bytes=audio["bytes"],
                    text=record[text_col] or "",
                    speaker=speaker,
                    labels=labels,
                )
