"""Reading a text to speak: UTF-8 from a file or a stream, in bounded blocks.

A whole book is a few MB; past ``MAX_TEXT_BYTES`` the "text" is a device or a mistake
(``-i /dev/urandom``), so it is refused at its first bad byte or at the bound, never read whole
(or forever) first.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import BinaryIO

from voxmill.errors import ConfigError

__all__ = ["MARKDOWN_SUFFIXES", "MAX_TEXT_BYTES", "read_stream", "read_text_file"]

MAX_TEXT_BYTES = 64 * 1024 * 1024
MARKDOWN_SUFFIXES = (".md", ".markdown")
_READ_BLOCK = 1024 * 1024


def read_stream(stream: BinaryIO, name: str) -> str:
    """UTF-8 text (a BOM is dropped) from ``stream``; ConfigError naming ``name`` for bytes that are
    not UTF-8 or for more than ``MAX_TEXT_BYTES``."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    parts: list[str] = []
    total = 0
    while True:
        block = stream.read(_READ_BLOCK)
        total += len(block)
        if total > MAX_TEXT_BYTES:
            raise ConfigError(f"{name}: more than {MAX_TEXT_BYTES // (1024 * 1024)} MB of text; split it")
        try:
            parts.append(decoder.decode(block, final=not block))
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{name}: not UTF-8 text (byte {total - len(block) + exc.start})") from None
        if not block:
            return "".join(parts)


def read_text_file(path: Path) -> str:
    """The text of ``path`` (see :func:`read_stream`); ConfigError when it cannot be read."""
    try:
        with path.open("rb") as stream:
            return read_stream(stream, str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
