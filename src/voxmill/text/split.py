"""Long texts into what a voice speaks: chapters -> paragraphs -> sentences -> pieces short enough to say.

Chapters start at headings: markdown ``#``/``##`` headings and, in plain text, a one-line paragraph
such as ``Chapter 3``, ``CHAPTER IV: The Storm``, ``Part Two`` or ``Prologue``. Paragraphs are
separated by blank lines. Sentences come from sentencex (rule-based, ~300 languages, abbreviations
such as "Mr." and "e.g." handled; a compiled splitter ~5000x faster than pysbd here). A sentence
longer than ``max_chars`` is cut at clause boundaries (``, ; : —``), else between words, else (one
word longer than that: a URL, a hostile 50,000-letter token) inside the word: VITS voices slur and
drift on very long inputs, and their memory grows with the square of the input. SSML/HTML tags are
not read aloud (text/markup.py): ``<break>`` becomes a pause.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from voxmill.text.markup import has_markup, segments
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
    breaks: dict[int, float] = field(default_factory=dict)
    """Paragraphs followed by a pause the text's markup asks for (``<break time="1s"/>``), in seconds."""


def _markdown_blocks(text: str) -> Iterator[tuple[int, str]]:
    """(heading level or 0, plain text) for each block of a markdown document; code is not read aloud."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    level = 0
    for token in tokens:
        if token.type == "heading_open":
            level = int(token.tag[1:])
        elif token.type == "html_block":  # markup is not read aloud, but the text inside it is
            yield 0, token.content
        elif token.type == "inline":
            yield level, _inline_text(token.children or [])
            level = 0
        elif token.type == "heading_close":
            level = 0


def _inline_text(children: list[Any]) -> str:
    parts = []
    for child in children:
        if child.type in ("text", "code_inline", "html_inline"):  # html: tags go later, with plain text's
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
    markup = has_markup(text)
    for level, raw in _markdown_blocks(text) if markdown else _text_blocks(text):
        for segment in segments(raw) if markup else [None]:
            block = clean_text(raw if segment is None else segment.text)
            if not block:
                continue
            heading, level = 0 < level <= chapter_level, 0  # a heading cut by a <break>: one chapter
            if heading:
                if chapters[-1].paragraphs or chapters[-1].title:
                    chapters.append(Chapter(len(chapters), block))
                else:
                    chapters[-1].title = block
            chapters[-1].paragraphs.append(block)
            if segment is not None and segment.pause is not None:
                chapters[-1].breaks[len(chapters[-1].paragraphs) - 1] = segment.pause
    kept = [c for c in chapters if c.paragraphs]
    for index, chapter in enumerate(kept):
        chapter.index = index
    return kept


def sentences(paragraph: str, language: str = "en") -> list[str]:
    """The sentences of one paragraph, stripped, in order; nothing is dropped."""
    from sentencex import segment

    found = [s.strip() for s in segment(language, paragraph)]
    return [s for s in found if s]


def _inside_word(text: str, max_chars: int) -> int:
    """Where to cut a word longer than ``max_chars``: after its last non-alphanumeric character in the
    second half of the window (``/`` in a URL, ``-``), else at ``max_chars``; never between a letter
    and its combining marks."""
    for i in range(max_chars - 1, max_chars // 2, -1):
        if not text[i].isalnum() and unicodedata.category(text[i])[0] != "M":
            return i + 1
    cut = max_chars
    while cut > 1 and unicodedata.category(text[cut])[0] == "M":
        cut -= 1
    return cut


def split_long(sentence: str, max_chars: int) -> list[str]:
    """``sentence`` in pieces of at most ``max_chars``.

    Cuts after the last clause boundary that fits, else at the last space that fits, else inside the
    word (see ``_inside_word``).
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
            cut = _inside_word(rest, max_chars)
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


@dataclass(frozen=True)
class Piece:
    """Text spoken in one go, with where it sits: ``pause`` is what follows it.

    ``pause``: "clause" (inside a sentence cut for length), "sentence", "paragraph", "end" (last of
    its chapter) or "break" (a pause the markup asks for: ``seconds``). ``sentence`` counts sentences
    within the chapter, so the pieces of one cut sentence share it.
    """

    text: str
    paragraph: int
    sentence: int
    pause: str
    seconds: float | None = None


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
            last = out[-1]
            pause = chapter.breaks.get(p)
            out[-1] = Piece(last.text, p, last.sentence, "paragraph" if pause is None else "break", pause)
    if out and out[-1].pause != "break":
        out[-1] = Piece(out[-1].text, out[-1].paragraph, out[-1].sentence, "end")
    return out
