"""Long texts into what a voice speaks: chapters -> paragraphs -> sentences -> pieces short enough to say.

Chapters start at headings: markdown ``#``/``##`` headings and, in plain text, a one-line paragraph
such as ``Chapter 3``, ``CHAPTER IV: The Storm``, ``Part Two`` or ``Prologue``. Paragraphs are
separated by blank lines. Sentences come from sentencex (rule-based, ~300 languages, abbreviations
such as "Mr." and "e.g." handled; a compiled splitter ~5000x faster than pysbd here). A sentence
longer than ``max_chars`` is cut at clause boundaries (``, ; : —``), else between words: VITS voices
slur and drift on very long inputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from voxmill.text.normalize import clean_text

__all__ = ["Chapter", "Piece", "parse_document", "pieces", "sentences", "split_long"]

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    "seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|first|second|third|fourth|fifth|last"
)
_HEADING = re.compile(
    rf"^(?:(?:chapter|part|book)\s+(?:\d+|[ivxlcdm]+|(?:{_NUMBER_WORDS})(?:[- ](?:{_NUMBER_WORDS}))?)\b"
    r"|prologue\b|epilogue\b)[^\n]{0,80}$",
    re.IGNORECASE,
)
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
_BLANK_LINES = re.compile(r"\n\s*\n")
_CLAUSE_END = re.compile(r"[,;:\u2014\u2013)](?=\s)|\s[\u2014\u2013-]{1,2}(?=\s)")


@dataclass
class Chapter:
    """A chapter: its heading (``""`` for text before the first heading) and its paragraphs.

    The heading is also the first paragraph, so it is spoken, as audiobooks do.
    """

    index: int
    title: str
    paragraphs: list[str] = field(default_factory=list)


def _markdown_blocks(text: str) -> Iterator[tuple[int, str]]:
    """(heading level or 0, plain text) for each block of a markdown document; code is not read aloud."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    level = 0
    for token in tokens:
        if token.type == "heading_open":
            level = int(token.tag[1:])
        elif token.type == "inline":
            yield level, _inline_text(token.children or [])
            level = 0
        elif token.type == "heading_close":
            level = 0


def _inline_text(children: list[Any]) -> str:
    parts = []
    for child in children:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":  # its alt text, as a screen reader would
            parts.append(_inline_text(child.children or []))
    return "".join(parts)


def _text_blocks(text: str) -> Iterator[tuple[int, str]]:
    for block in _BLANK_LINES.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        stripped = block.strip()
        if not stripped:
            continue
        single_line = "\n" not in stripped
        md = _MD_HEADING.match(stripped) if single_line else None
        if md:
            yield 1, md.group(1)
        elif single_line and _HEADING.match(stripped):
            yield 1, stripped
        else:
            yield 0, stripped


def parse_document(text: str, markdown: bool = False, chapter_level: int = 2) -> list[Chapter]:
    """Chapters of ``text`` (plain text or markdown). Headings up to ``chapter_level`` start a chapter;
    deeper ones are read as paragraphs. Chapters without any text are dropped."""
    chapters = [Chapter(0, "")]
    for level, raw in _markdown_blocks(text) if markdown else _text_blocks(text):
        block = clean_text(raw)
        if not block:
            continue
        if 0 < level <= chapter_level:
            if chapters[-1].paragraphs or chapters[-1].title:
                chapters.append(Chapter(len(chapters), block))
            else:
                chapters[-1].title = block
        chapters[-1].paragraphs.append(block)
    kept = [c for c in chapters if c.paragraphs]
    for index, chapter in enumerate(kept):
        chapter.index = index
    return kept


def sentences(paragraph: str, language: str = "en") -> list[str]:
    """The sentences of one paragraph, stripped, in order; nothing is dropped."""
    from sentencex import segment

    found = [s.strip() for s in segment(language, paragraph)]
    return [s for s in found if s]


def split_long(sentence: str, max_chars: int) -> list[str]:
    """``sentence`` in pieces of at most ``max_chars`` (a word longer than that stays whole).

    Cuts after the last clause boundary that fits, else at the last space that fits.
    """
    pieces = []
    rest = sentence.strip()
    while len(rest) > max_chars:
        window = rest[: max_chars + 1]
        cut = 0
        for match in _CLAUSE_END.finditer(window):
            if match.end() >= max_chars // 4:  # a tiny first piece would sound clipped
                cut = match.end()
        if cut == 0:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = rest.find(" ", max_chars)
            if cut < 0:
                break
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


@dataclass(frozen=True)
class Piece:
    """Text spoken in one go, with where it sits: ``pause`` is what follows it.

    ``pause``: "clause" (inside a sentence cut for length), "sentence", "paragraph" or "end" (last of
    its chapter). ``sentence`` counts sentences within the chapter, so the pieces of one cut sentence
    share it.
    """

    text: str
    paragraph: int
    sentence: int
    pause: str


def pieces(chapter: Chapter, language: str = "en", max_chars: int = 300) -> list[Piece]:
    """Every piece of ``chapter`` in reading order."""
    out: list[Piece] = []
    count = 0
    for p, paragraph in enumerate(chapter.paragraphs):
        for sentence in sentences(paragraph, language):
            parts = split_long(sentence, max_chars)
            for i, part in enumerate(parts):
                out.append(Piece(part, p, count, "clause" if i < len(parts) - 1 else "sentence"))
            count += 1
        if out and out[-1].paragraph == p:
            out[-1] = Piece(out[-1].text, p, out[-1].sentence, "paragraph")
    if out:
        out[-1] = Piece(out[-1].text, out[-1].paragraph, out[-1].sentence, "end")
    return out
