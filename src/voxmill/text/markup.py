"""Markup in a text to speak: SSML or HTML tags are never read aloud.

A text pasted from an SSML tool (``<speak>Hello <break time="1s"/> world</speak>``) or a web page
was spoken tag by tag ("less than speak greater than"). Here tags are removed, their text kept, and
what a voice can honour is honoured: ``<break>`` becomes a pause of its ``time`` (or ``strength``),
``</p>`` a paragraph end, ``<sub alias="World Wide Web">WWW</sub>`` its alias; entities
(``&amp;``) are decoded. Only things shaped like tags are touched: ``a < b > c`` is left as written.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

__all__ = ["MAX_BREAK_SECONDS", "Segment", "has_markup", "segments"]

# A pause longer than this is a hostile or mistaken value, not a reading (Amazon Polly's limit too).
MAX_BREAK_SECONDS = 10.0
# SSML's named strengths, in seconds; a bare <break/> is "medium".
_STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.5, "strong": 0.8, "x-strong": 1.2}

_ATTRS = r"""(?:\s+[\w:.-]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*"""
# An unclosed comment or CDATA section runs to the end of the text (as in HTML): matched once, not
# searched for its end again from every later "<!--" (quadratic on hostile input).
_TAG = re.compile(
    r"<!\[CDATA\[(?P<literal>.*?)(?:\]\]>|\Z)|<!--.*?(?:-->|\Z)|<[?!][^<>]*>"
    rf"|<(?P<close>/?)(?P<name>[A-Za-z][\w:.-]*)(?P<attrs>{_ATTRS})\s*/?>",
    re.DOTALL,
)
_SUB = re.compile(rf"<sub\b({_ATTRS})\s*>[^<]*</sub\s*>", re.IGNORECASE)  # plain text inside: linear
_ALIAS = re.compile(r"""\balias\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_TIME = re.compile(r"""\btime\s*=\s*["']?\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(ms|s)\b""", re.IGNORECASE)
_STRENGTH = re.compile(r"""\bstrength\s*=\s*["']?([a-z-]+)""", re.IGNORECASE)
# Tags inside a word or phrase: removed without a space ("<emphasis>wo</emphasis>rd" stays one word).
# Every other tag (speak, p, s, div, br, ...) separates what is around it.
_INLINE = frozenset({
    "emphasis", "say-as", "prosody", "phoneme", "sub", "lang", "mark", "voice", "audio", "w", "token", "a",
    "b", "i", "u", "em", "strong", "span", "code", "small", "big", "sup",
})  # fmt: skip


@dataclass(frozen=True)
class Segment:
    """Text between pauses the markup asks for. ``pause``: seconds after it (a ``<break>``), or None
    for a plain paragraph end (``</p>``, or the end of the block)."""

    text: str
    pause: float | None


def has_markup(text: str) -> bool:
    """Whether ``text`` holds anything shaped like a tag, a comment or a processing instruction."""
    return "<" in text and _TAG.search(text) is not None


def _break_seconds(attributes: str) -> float:
    time = _TIME.search(attributes)
    if time is not None:
        value = float(time.group(1)) / (1000 if time.group(2).lower() == "ms" else 1)
    else:
        strength = _STRENGTH.search(attributes)
        value = _STRENGTHS.get(strength.group(1).lower(), 0.5) if strength else _STRENGTHS["medium"]
    return min(value, MAX_BREAK_SECONDS)


def _alias(match: re.Match[str]) -> str:
    alias = _ALIAS.search(match.group(1))
    return match.group(0) if alias is None else alias.group(1) or alias.group(2) or ""


def segments(text: str) -> list[Segment]:
    """``text`` without its tags, cut where the markup asks for a pause or a paragraph end.

    A pause before any text is dropped; consecutive pauses add up (to at most ``MAX_BREAK_SECONDS``).
    Entities are decoded after the tags are gone, so ``&lt;b&gt;`` is read as the text it stands for.
    """
    text = _SUB.sub(_alias, text)
    out: list[Segment] = []
    current: list[str] = []
    position = 0

    def end(pause: float | None) -> None:
        said = html.unescape("".join(current))
        if said.strip():
            out.append(Segment(said, pause))
        elif out and pause is not None:  # a pause after a pause (or after a paragraph end)
            out[-1] = Segment(out[-1].text, min((out[-1].pause or 0.0) + pause, MAX_BREAK_SECONDS))
        current.clear()

    for match in _TAG.finditer(text):
        current.append(text[position : match.start()])
        position = match.end()
        name = (match.group("name") or "").lower()
        if match.group("literal") is not None:  # CDATA: literal text, escaped so decoding keeps it
            current.append(html.escape(match.group("literal"), quote=False))
        elif name == "break":
            end(_break_seconds(match.group("attrs") or ""))
        elif name == "p" and match.group("close"):
            end(None)
        else:
            current.append("" if name in _INLINE else " ")
    current.append(text[position:])
    end(None)
    return out
