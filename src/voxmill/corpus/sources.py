"""Corpus readers: every input row becomes one :class:`Row`, good or bad, never an exception.

Formats (auto-detected, or named with ``--source-format``):
  ljspeech   ``metadata.csv``: ``id|text``, ``id|text|normalized`` or ``id|speaker|text`` (told apart
             from the data), audio in ``wavs/`` by id (any audio suffix) or by relative path; in a
             folder, ``metadata_val.csv`` beside it too (a Piper folder's validation rows: ``Split.VALIDATION``)
  coqui      ``*.csv`` with a header naming ``audio_file`` and ``text`` (``speaker_name``, more, any order)
  commonvoice ``*.tsv`` with ``client_id``, ``path`` (under ``clips/``), ``sentence``, ``accents``, ``variant``
  folder     audio files with sidecar ``.txt``/``.lab`` transcripts, recursive
  parquet    files or folders of parquet with an audio struct<bytes, path> column and a text column

Audio named by metadata must resolve (symlinks followed) inside the dataset root, the folder holding
the metadata: a dataset someone else made could otherwise name ``../../home/you/private.wav`` or
``/etc/shadow`` and have it packed into the output. Such a row fails (``Problem.OUTSIDE_ROOT``) unless
the reader is told ``allow_outside``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from voxmill import errors
from voxmill.corpus.piper import PIPER_METADATA, PIPER_VALIDATION_METADATA
from voxmill.corpus.rows import AUDIO_SUFFIXES, Problem, Row, Source, Split, parse_source
from voxmill.corpus.tables import MAX_LINE_BYTES, encoding_problem, file_encoding_problem, lines, split_fields

__all__ = [
    "AUDIO_SUFFIXES",
    "FORMATS",
    "MISSING_AUDIO",
    "Problem",
    "Row",
    "Source",
    "detect_format",
    "parse_source",
    "read_rows",
]

FORMATS = ("ljspeech", "coqui", "commonvoice", "folder", "parquet")
MISSING_AUDIO = "audio file not found"  # how a row whose audio is missing starts its error
LAYOUT_SAMPLE = 2000  # metadata lines read to tell the layout of a metadata.csv


@dataclass(frozen=True)
class _Root:
    """The folder a source's files must resolve into; ``real`` is None when reading outside is allowed."""

    folder: Path
    real: Path | None

    @classmethod
    def of(cls, folder: Path, allow_outside: bool) -> _Root:
        return cls(folder, None if allow_outside else folder.resolve())

    def outside(self, path: Path, what: str = "audio") -> str | None:
        """The reason ``path`` may not be read, or None."""
        if self.real is None:
            return None
        try:
            real = path.resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            return f"{what} outside the dataset root: {path} cannot be resolved ({exc})"
        if real.is_relative_to(self.real):
            return None
        return f"{what} outside the dataset root: {path} is {real}, not under {self.folder} (--allow-outside reads it)"


def _bad(row_id: str, where: str, problem: Problem, error: str, text: str = "", speaker: str | None = None,
         labels: dict[str, str] | None = None) -> Row:  # fmt: skip
    return Row(row_id, where, text=text, speaker=speaker, labels=labels or {}, error=error, problem=problem)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system names no file
        return False


def _coqui_header(path: Path) -> bool:
    """Whether the first line of ``path`` is a Coqui header (``audio_file`` and a text column, any order)."""
    with path.open("rb") as fh:
        head = fh.readline().decode("utf-8-sig", "replace")
    names = {name.strip().lower() for name in head.split("|")}
    return "audio_file" in names and bool(names & {"text", "transcription"})


def _coqui_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(p for p in path.glob("*.csv") if p.is_file() and _coqui_header(p))
    if not found:
        raise errors.DatasetError(f"{path}: no Coqui csv in the folder (a *.csv whose header names audio_file|text)")
    return found


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "metadata.csv").is_file():
            return "coqui" if _coqui_header(path / "metadata.csv") else "ljspeech"
        if any(p.is_file() and _coqui_header(p) for p in path.glob("*.csv")):
            return "coqui"
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
        return "coqui" if _coqui_header(path) else "ljspeech"
    raise errors.DatasetError(f"{path}: cannot tell the corpus format; pass --source-format ({', '.join(FORMATS)})")


def read_rows(source: Source, allow_outside: bool = False) -> tuple[Iterator[Row], str]:
    """Rows of a source and a one-line description of how it was read. Raises DatasetError if unreadable.

    ``allow_outside`` lets metadata name audio outside the folder that holds it (see the module docstring).
    """
    if not source.path.exists():
        raise errors.DatasetError(f"{source.path}: no such file or folder")
    fmt = source.format or detect_format(source.path)
    if fmt not in FORMATS:
        raise errors.DatasetError(f"{source.path}: unknown source format {fmt!r}; use one of {', '.join(FORMATS)}")
    if source.columns and fmt != "parquet":
        options = ", ".join(f"{key}_column" for key in sorted(source.columns))
        raise errors.ConfigError(f"{source.path}: {options} is for parquet sources; this one is read as {fmt}")
    if fmt == "ljspeech":
        return _ljspeech(source, allow_outside)
    if fmt == "coqui":
        return _coqui(source, allow_outside), "coqui csv"
    if fmt == "commonvoice":
        return _commonvoice(source, allow_outside), "common voice tsv"
    if fmt == "folder":
        return _folder(source, allow_outside), "folder with sidecar transcripts"
    return _parquet(source), "parquet"


def _require_utf8(path: Path) -> None:
    """A UTF-16/32 metadata file is one problem, said once, not one bogus failure per line."""
    problem = file_encoding_problem(path)
    if problem:
        raise errors.DatasetError(f"{path}: {problem}")


def _find_audio(folder: Path, ref: str) -> Path | None:
    """Audio for ``ref``: a relative path as given, else ``wavs/<ref>.<any audio suffix>``."""
    direct = folder / ref
    if direct.suffix.lower() in AUDIO_SUFFIXES and _is_file(direct):
        return direct
    for base in (folder / "wavs", folder):
        for suffix in AUDIO_SUFFIXES:
            candidate = base / f"{ref}{suffix}"
            if _is_file(candidate):
                return candidate
    return None


def _ljspeech_layout(tables: list[Path]) -> str:
    """The layout most of the first lines have: one row with a ``|`` in its text must not decide it."""
    # Told from the first lines, so a corpus of millions of rows is streamed, not held. A Piper folder's
    # two tables share one layout (one writer made both), told mostly from metadata.csv.
    every = itertools.chain.from_iterable(lines(table) for table in tables)
    sample = [split_fields(line) for _, line, _, _ in itertools.islice(every, LAYOUT_SAMPLE) if line is not None]
    widths = Counter(len(fields) for fields in sample if len(fields) >= 2)
    if not widths:
        return "id|text"
    # A tie goes to fewer columns: read as id|text, a row with an extra '|' keeps all its text.
    width = max(widths, key=lambda n: (widths[n], -n))
    if width == 2:
        return "id|text"
    # id|speaker|text has few distinct, space-free second columns; id|text|normalized repeats the text.
    second = [fields[1].strip() for fields in sample if len(fields) == width]
    speakerish = sum(1 for value in second if value and " " not in value) / len(second)
    if speakerish > 0.9 and len(set(second)) <= max(1, len(second) // 2):
        return "id|speaker|text"
    return "id|text|normalized"


def _ljspeech_fields(fields: list[str], layout: str) -> tuple[str | None, str] | str:
    """(speaker, text) of a line's fields, or why they do not fit ``layout``. A text is never cut."""
    if layout == "id|text":
        return None, "|".join(fields[1:])  # more fields: a '|' inside the transcript
    if layout == "id|speaker|text":
        if len(fields) < 3:
            return f"{len(fields)} fields where the file is id|speaker|text"
        return fields[1].strip(), "|".join(fields[2:])
    if len(fields) > 3:
        return (
            f"{len(fields)} fields where the file is id|text|normalized: a '|' inside a text, and which one "
            'cannot be told; quote that field ("...")'
        )
    return None, fields[2] if len(fields) == 3 and fields[2].strip() else fields[1]  # normalized text when present


def _ljspeech(source: Source, allow_outside: bool) -> tuple[Iterator[Row], str]:
    """metadata.csv; given a folder, its metadata_val.csv too (a Piper folder's validation rows, marked so)."""
    meta = source.path / PIPER_METADATA if source.path.is_dir() else source.path
    if not meta.is_file():
        raise errors.DatasetError(f"{source.path}: no metadata.csv (the LJSpeech layout is metadata.csv + wavs/)")
    tables = [(meta, Split.TRAIN)]
    validation = source.path / PIPER_VALIDATION_METADATA
    if source.path.is_dir() and validation.is_file():
        tables.append((validation, Split.VALIDATION))
    for table, _ in tables:
        _require_utf8(table)
    root = _Root.of(meta.parent, allow_outside)
    layout = _ljspeech_layout([table for table, _ in tables])

    def rows() -> Iterator[Row]:
        for table, split in tables:
            for row in _ljspeech_rows(table, layout, root, source.labels):
                yield row if split is Split.TRAIN else replace(row, split=split)

    also = f" (+ {PIPER_VALIDATION_METADATA}: validation rows)" if len(tables) > 1 else ""
    return rows(), f"ljspeech metadata.csv read as {layout}{also}"


def _ljspeech_rows(meta: Path, layout: str, root: _Root, labels: dict[str, str]) -> Iterator[Row]:
    for number, line, problem, reason in lines(meta):
        where, line_id = f"{meta}:{number}", f"{meta.name}:{number}"
        if line is None:
            yield _bad(line_id, where, problem or Problem.ENCODING, reason)
            continue
        fields = split_fields(line)
        if len(fields) < 2:
            yield _bad(line_id, where, Problem.PARSE, f"line {number}: no '|' delimiter")
            continue
        clip_id = fields[0].strip()
        fitted = _ljspeech_fields(fields, layout)
        if isinstance(fitted, str) or not clip_id:
            error = fitted if isinstance(fitted, str) else "empty id"
            yield _bad(clip_id or line_id, where, Problem.PARSE, f"line {number}: {error}")
            continue
        speaker, text = fitted
        yield _located(clip_id, where, _find_audio(meta.parent, clip_id), root, text, speaker, labels)


def _located(
    row_id: str, where: str, audio: Path | None, root: _Root, text: str, speaker: str | None, labels: dict[str, str]
) -> Row:
    """A row whose audio was looked up: found and inside the root, missing, or outside it."""
    if audio is None or not _is_file(audio):
        detail = f" for id {row_id!r} (looked in {root.folder / 'wavs'})" if audio is None else f": {audio}"
        return _bad(row_id, where, Problem.MISSING_AUDIO, f"{MISSING_AUDIO}{detail}", text=text, speaker=speaker,
                    labels=labels)  # fmt: skip
    outside = root.outside(audio)
    if outside:
        return _bad(row_id, where, Problem.OUTSIDE_ROOT, outside, text=text, speaker=speaker, labels=labels)
    return Row(row_id, where, str(audio), text=text, speaker=speaker, labels=labels)


def _coqui(source: Source, allow_outside: bool) -> Iterator[Row]:
    # The files and headers are read now, so a folder without a Coqui csv stops the run before any work.
    tables = [(csv, _header(csv, "|")) for csv in _coqui_files(source.path)]

    def rows() -> Iterator[Row]:
        for csv, header in tables:
            root = _Root.of(csv.parent, allow_outside)
            for row_id, where, record, problem, error in _records(csv, header, "|", ("text", "transcription"), True):
                ref = (record.get("audio_file") or "").strip()
                if problem or not ref:
                    yield _bad(row_id, where, problem or Problem.PARSE, error or "empty audio_file")
                    continue
                text = record.get("text") or record.get("transcription") or ""
                speaker = (record.get("speaker_name") or "").strip() or None
                yield _located(ref, where, csv.parent / ref, root, text, speaker, source.labels)

    return rows()


def _commonvoice(source: Source, allow_outside: bool) -> Iterator[Row]:
    tsvs = sorted(source.path.glob("*.tsv")) if source.path.is_dir() else [source.path]
    if not tsvs:
        raise errors.DatasetError(f"{source.path}: no *.tsv in the folder (Common Voice: *.tsv + clips/)")
    tables = [(tsv, _header(tsv, "\t")) for tsv in tsvs]

    def rows() -> Iterator[Row]:
        for tsv, header in tables:
            root = _Root.of(tsv.parent, allow_outside)
            # Common Voice does not quote: a sentence may start with '"'.
            for row_id, where, record, problem, error in _records(tsv, header, "\t", ("sentence",), False):
                ref = (record.get("path") or "").strip()
                if problem or not ref:
                    yield _bad(row_id, where, problem or Problem.PARSE, error or "empty path")
                    continue
                labels = dict(source.labels)
                for key in ("accents", "variant", "locale", "gender", "age"):
                    if record.get(key):
                        labels.setdefault(key, record[key])
                speaker = (record.get("client_id") or "").strip() or None
                text = record.get("sentence") or ""
                yield _located(ref, where, tsv.parent / "clips" / ref, root, text, speaker, labels)

    return rows()


def _header(path: Path, delimiter: str) -> list[str]:
    """The header of a delimited file, read before any row so an unreadable file stops the run at once."""
    _require_utf8(path)
    first = next(lines(path), None)
    if first is None:
        return []
    if first[1] is None:
        raise errors.DatasetError(f"{path}: header {first[3].removeprefix('line 1: ')}")
    return [name.strip() for name in split_fields(first[1], delimiter)]


Record = tuple[str, str, dict[str, str], Problem | None, str]


def _records(
    path: Path, header: list[str], delimiter: str, text_keys: tuple[str, ...], quoted: bool
) -> Iterator[Record]:
    """(id, where, record, problem, error) per data line. A line with more fields than the header has
    the delimiter inside its text (the one free-text column): those fields are joined back into it."""
    text_at = next((header.index(key) for key in text_keys if key in header), None)
    for number, line, problem, reason in itertools.islice(lines(path), 1, None):
        where, row_id = f"{path}:{number}", f"{path.name}:{number}"
        if line is None:
            yield row_id, where, {}, problem or Problem.ENCODING, reason
            continue
        values = split_fields(line, delimiter, quoted)
        extra = len(values) - len(header)
        if extra > 0 and text_at is not None:
            values[text_at : text_at + extra + 1] = [delimiter.join(values[text_at : text_at + extra + 1])]
        elif extra != 0:
            error = f"line {number}: {len(values)} fields where the header has {len(header)}"
            yield row_id, where, {}, Problem.PARSE, error
            continue
        yield row_id, where, dict(zip(header, values, strict=True)), None, ""


def _folder(source: Source, allow_outside: bool) -> Iterator[Row]:
    root = _Root.of(source.path, allow_outside)
    for audio in sorted(p for p in source.path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()):
        rel = audio.relative_to(source.path).with_suffix("")
        speaker = rel.parts[0] if source.speaker_from_dir and len(rel.parts) > 1 else None
        transcript = next((t for t in (audio.with_suffix(".txt"), audio.with_suffix(".lab")) if t.is_file()), None)
        outside = root.outside(audio)
        if outside:
            yield _bad(str(rel), str(audio), Problem.OUTSIDE_ROOT, outside, speaker=speaker, labels=source.labels)
            continue
        text, problem, error = _transcript(transcript, root)
        yield Row(str(rel), str(audio), str(audio), text=text, speaker=speaker, labels=source.labels, error=error,
                  problem=problem)  # fmt: skip


def _transcript(path: Path | None, root: _Root) -> tuple[str, Problem | None, str | None]:
    """(text, problem, error) of a sidecar transcript."""
    if path is None:
        return "", Problem.NO_TRANSCRIPT, "no transcript (.txt or .lab) beside the audio"
    outside = root.outside(path, "transcript")
    if outside:
        return "", Problem.OUTSIDE_ROOT, outside
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_LINE_BYTES + 1)
    except OSError as exc:
        return "", Problem.UNREADABLE, f"{path.name}: {exc.strerror or exc}"
    if len(raw) > MAX_LINE_BYTES:
        return "", Problem.TOO_LONG, f"{path.name}: longer than {MAX_LINE_BYTES} bytes"
    problem = encoding_problem(raw[:4096])
    if problem:
        return "", Problem.ENCODING, f"{path.name}: {problem}"
    try:
        return raw.decode("utf-8-sig"), None, None
    except UnicodeDecodeError as exc:
        return "", Problem.ENCODING, f"{path.name}: invalid UTF-8 ({exc.reason} at byte {exc.start})"


_TEXT_COLUMNS = ("text", "sentence", "transcription", "normalized_text")
_SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")


def _parquet(source: Source) -> Iterator[Row]:
    # Audio comes from the embedded bytes only; the struct's path is a name, never opened.
    import pyarrow.parquet as pq

    files = sorted(source.path.rglob("*.parquet")) if source.path.is_dir() else [source.path]
    audio_col = source.columns.get("audio", "audio")
    labels = source.labels
    for file in files:
        try:
            parquet = pq.ParquetFile(file)
        except Exception as exc:
            raise errors.DatasetError(f"{file}: not a readable parquet file: {exc}") from None
        names = parquet.schema_arrow.names
        text_col = source.columns.get("text") or next((c for c in _TEXT_COLUMNS if c in names), None)
        speaker_col = source.columns.get("speaker") or next((c for c in _SPEAKER_COLUMNS if c in names), None)
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
                text = record[text_col] or ""
                if not audio.get("bytes"):
                    yield _bad(clip_id, where, Problem.NO_AUDIO, "row has no audio bytes", text=text, labels=labels)
                    continue
                speaker = str(record[speaker_col]) if speaker_col and record.get(speaker_col) is not None else None
                yield Row(clip_id, where, audio_bytes=audio["bytes"], text=text, speaker=speaker, labels=labels)
