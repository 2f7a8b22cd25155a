"""Delimited metadata files (``id|text``, Coqui csv, Common Voice tsv): one rule to read, one to write.

Piper's trainer reads ``metadata.csv`` with ``csv.reader(f, delimiter="|")``: a field that starts with
``"`` is a quoted field, in which ``|`` is text and ``""`` is one ``"`` (Coqui's reader, pandas, does
the same). So a transcript holding ``|`` is written quoted (:func:`join_fields`), and read back the way
the trainer reads it (:func:`split_fields`). Everything else is written raw, as LJSpeech tools expect.

Reading is per line: an unbalanced quote in someone's transcript (``"Hi, he said``) must not swallow
the lines after it, so a line that is not well-formed csv is split on every delimiter instead.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from voxmill.corpus.rows import Problem

__all__ = ["MAX_LINE_BYTES", "encoding_problem", "file_encoding_problem", "join_fields", "lines", "split_fields"]

_BOMS = (  # UTF-32 first: its little-endian mark begins with UTF-16's
    (codecs.BOM_UTF32_LE, "UTF-32LE"),
    (codecs.BOM_UTF32_BE, "UTF-32BE"),
    (codecs.BOM_UTF16_LE, "UTF-16LE"),
    (codecs.BOM_UTF16_BE, "UTF-16BE"),
)
_HEAD_BYTES = 4096
# A metadata line or transcript longer than this is no clip's: ~10,000 words, an hour of speech. The
# bound keeps a reader's memory flat and every item and result small enough to cross to a worker.
MAX_LINE_BYTES = 1 << 16


def encoding_problem(head: bytes) -> str | None:
    """Why text starting with ``head`` is not UTF-8 as a whole (UTF-16/32), or None.

    Such a file is not bad line by line: each of its lines would fail, or (without a byte order mark)
    decode as ASCII interleaved with NULs, and every id would name a file that does not exist.
    """
    for bom, name in _BOMS:
        if head.startswith(bom):
            return (
                f"invalid UTF-8: the file is {name} text (it starts with a byte order mark); "
                f"re-save it as UTF-8 (iconv -f {name[:6]} -t UTF-8)"
            )
    if b"\x00" in head:
        return (
            "invalid UTF-8: the file holds NUL bytes (UTF-16 text without a byte order mark?); "
            "re-save it as UTF-8 (iconv -f UTF-16LE -t UTF-8)"
        )
    return None


def file_encoding_problem(path: Path) -> str | None:
    with path.open("rb") as fh:
        return encoding_problem(fh.read(_HEAD_BYTES))


def lines(path: Path) -> Iterator[tuple[int, str | None, Problem | None, str]]:
    """(line number, text or None, problem, reason) per non-empty line; one bad line spoils nothing else.

    A line is read up to :data:`MAX_LINE_BYTES`: a longer one (a 10 MB line, a binary file read as
    text) is skipped to its end in pieces and reported, so memory stays bounded whatever the input.
    """
    with path.open("rb") as fh:
        number = 0
        while raw := fh.readline(MAX_LINE_BYTES + 1):
            number += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := fh.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass
                yield number, None, Problem.TOO_LONG, f"line {number}: longer than {MAX_LINE_BYTES} bytes"
                continue
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                yield number, None, Problem.ENCODING, f"line {number}: invalid UTF-8 ({exc.reason} at byte {exc.start})"
                continue
            if line.strip():
                yield number, line, None, ""


def split_fields(line: str, delimiter: str = "|", quoted: bool = True) -> list[str]:
    """The fields of one line, as Piper's trainer reads them when the line is well-formed csv."""
    if quoted and '"' in line:
        try:
            return next(csv.reader([line], delimiter=delimiter, strict=True))
        except csv.Error:
            pass  # not csv quoting, just a quote character in the text
    return line.split(delimiter)


def _field(value: str, delimiter: str) -> str:
    if delimiter in value or "\n" in value or "\r" in value or value.startswith('"'):
        return '"' + value.replace('"', '""') + '"'
    return value


def join_fields(fields: Sequence[str], delimiter: str = "|") -> str:
    """One metadata line (with its newline) that :func:`split_fields` and Piper's trainer read back as ``fields``."""
    return delimiter.join(_field(value, delimiter) for value in fields) + "\n"
