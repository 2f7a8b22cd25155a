"""Recognized words -> the book text they read: an anchored global alignment.

A long recording read from a book skips pages, reads a paragraph twice (a retake) and is misheard by
ASR. Each clip should still get the stretch of the book it says, with the book's punctuation and casing.
No library does this for a whole book against a whole recording (difflib/rapidfuzz align strings, not
200k words against 20k with retakes), so it is done here the way long-audio aligners do it:

1. both sides become normalized words (``normalize``); the book's keep their character offsets;
2. anchors: word trigrams that occur exactly once in the book, found in the recognized words;
3. the longest chain of anchors increasing in both (LIS, O(n log n)): a retake's second copy cannot
   join the chain (it goes back in the book), a skipped page is just a jump forward;
4. between consecutive anchors, a word-level alignment whose substitution cost is the character
   distance of the two words ("colour" ~ "color" is a near-match) and whose gaps are affine (a skipped
   page is one run); each DP is bounded in cells;
5. runs of extra words are moved as early as equal words allow, so a retake's later copy is paired
   whole and the earlier one is left unaligned (its clip gets None).

Time and memory are linear in the words apart from those bounded DPs: no N x M table over the book.
"""

from __future__ import annotations

import bisect
import os
import re
import stat
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist

from voxmill.errors import DatasetError, Reason

__all__ = ["MAX_DP_CELLS", "MAX_REFERENCE_BYTES", "ClipText", "align", "cer", "normalize", "read_reference"]

MAX_REFERENCE_BYTES = 200 * 1024 * 1024
"""A book is a few MB; past this the "text" is a device or a mistake."""
MAX_DP_CELLS = 2_000_000
"""The largest word-level DP between two anchors (hyp words x book words): ~16 MB and well under a second."""
_ANCHOR_WORDS = 3  # 1-2 words repeat everywhere in a book; 3 are mostly unique yet survive frequent ASR errors
_NEAR = 0.5  # a hyp word at most this character distance from its book word counts as read there
_LOOKAHEAD = 4  # a retake's copies that differ in a word are still one take if 3 of the 4 words before agree
_GAP_OPEN = 2.0  # a gap run (skipped words, extra words) costs this once, then 1 a word
_EDGE_SLACK = 20  # book words searched before the first / after the last anchor: 2 per hyp word + this

# Ideographs and kana are written without spaces: each character is one word (as CER tools count them).
_CJK = "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_APOSTROPHES = "'\u2019\u02bc"  # inside a word only: don't -> dont, l'home -> lhome


@cache
def _marks() -> str:
    """Every combining mark (M*) as a regex class body: ``\\w`` leaves them out, yet Devanagari vowel
    signs and decomposed accents are part of their words. Built once (~0.1 s) on first use."""
    ranges: list[str] = []
    start = previous = -2
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code))[0] == "M":
            if code != previous + 1:
                if start >= 0:
                    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
                start = code
            previous = code
    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
    return "".join(ranges)


@cache
def _piece_pattern() -> re.Pattern[str]:
    # Letters and digits, each run followed by its marks: "[^\W_]" alone runs in C at full speed,
    # an alternation per character would be 2x slower over a whole book.
    letters = rf"[^\W_{_CJK}]+(?:[{_marks()}]+[^\W_{_CJK}]*)*"
    return re.compile(rf"[{_CJK}]|{letters}(?:[{_APOSTROPHES}]{letters})*")


def _drop_symbols(word: str) -> str:
    # NFKC can turn a letter into letters plus punctuation (the fraction slash of "½"): drop those too.
    return "".join(ch for ch in word if unicodedata.category(ch)[0] not in "PSZ")


def _word(piece: str) -> str:
    """The comparable form of one piece of a word: NFKC, casefold, no apostrophes."""
    if piece.isascii():
        return piece.lower().replace("'", "")
    folded = unicodedata.normalize("NFKC", piece).casefold()
    return _drop_symbols("".join(ch for ch in folded if ch not in _APOSTROPHES))


def _words(text: str) -> tuple[list[str], list[int], list[int]]:
    """Normalized words of ``text`` with their character offsets (start, end) in ``text``."""
    words: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in _piece_pattern().finditer(text):
        word = _word(match.group())
        if word:
            words.append(word)
            starts.append(match.start())
            ends.append(match.end())
    return words, starts, ends


def normalize(text: str) -> str:
    """``text`` for comparison: NFKC, casefolded, punctuation and symbols gone (they separate words,
    apostrophes inside a word are dropped), one space between words, each CJK character its own word."""
    return " ".join(_words(text)[0])


_CJK_SPACE = re.compile(f"(?<=[{_CJK}]) | (?=[{_CJK}])")


def spell_numbers(text: str, language: str | None) -> str:
    """``text`` (``normalize``d) with each number said as words in ``language`` (num2words: Whisper writes
    "chapter 3" where a book says "Chapter Three"); unchanged for a language num2words does not know."""
    if not language or not any(ch.isdigit() for ch in text):
        return text
    from num2words import num2words

    def spoken(match: re.Match[str]) -> str:
        try:
            return normalize(num2words(int(match.group()), lang=language))
        except (NotImplementedError, OverflowError, ValueError):
            return match.group()

    return _NUMBER.sub(spoken, text)


_NUMBER = re.compile(r"(?<!\S)[0-9]{1,15}(?!\S)")  # a whole word of ASCII digits (a longer run is no number said)


def cer(hypothesis: str, reference: str, language: str | None = None) -> float:
    """Character error rate of ``hypothesis`` against ``reference``, both ``normalize``d (and, with a
    ``language``, their numbers spelled out): Levenshtein distance / reference length; 0.0 when both are
    empty, 1.0 when only the reference is."""
    # The spaces normalize puts between CJK characters are not in the text: counting them would halve
    # the error rate of Chinese and let misreadings through --max-cer.
    hyp = _CJK_SPACE.sub("", spell_numbers(normalize(hypothesis), language))
    ref = _CJK_SPACE.sub("", spell_numbers(normalize(reference), language))
    if not ref:
        return 0.0 if not hyp else 1.0
    return Levenshtein.distance(hyp, ref) / len(ref)


def read_reference(path: Path) -> str:
    """The book at ``path`` as plain text: ``.txt`` as written, ``.md``/``.markdown`` with its markup
    gone (headings, list markers, emphasis, links: their text stays). DatasetError naming the file when
    it cannot be read, is not UTF-8 (a BOM is fine), is larger than ``MAX_REFERENCE_BYTES`` or has no text."""
    from voxmill.text.source import MARKDOWN_SUFFIXES
    from voxmill.text.split import parse_document

    try:
        # O_NONBLOCK: opening a FIFO nobody writes would wait forever; only a regular file is read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as stream:
            if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                raise DatasetError(f"{path}: not a regular file")
            data = stream.read(MAX_REFERENCE_BYTES + 1)  # bounded, even if it grows meanwhile
    except OSError as exc:
        error = DatasetError(f"{path}: cannot read: {exc.strerror or exc}")
        if isinstance(exc, FileNotFoundError):
            error.code = Reason.MISSING
        raise error from None
    if len(data) > MAX_REFERENCE_BYTES:
        raise DatasetError(f"{path}: more than {MAX_REFERENCE_BYTES // (1024 * 1024)} MB of text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if path.suffix.lower() in MARKDOWN_SUFFIXES:
        text = "\n\n".join(p for chapter in parse_document(text, markdown=True) for p in chapter.paragraphs)
    if not text.strip():
        raise DatasetError(f"{path}: no text in the reference")
    return text


@dataclass(frozen=True)
class ClipText:
    """The book text one clip reads. ``text``: the book's own characters from ``start`` to ``end``
    (offsets in the reference string), punctuation attached to the first and last words included,
    whitespace collapsed to single spaces. ``cer``: the clip's recognized words against ``text``."""

    text: str
    start: int
    end: int
    cer: float


def _anchor_chain(ref: list[str], hyp: list[str]) -> list[tuple[int, int]]:
    """(book word, hyp word) pairs from the longest chain of unique-trigram anchors, increasing in both."""
    n = _ANCHOR_WORDS
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(ref) - n + 1):
        key = tuple(ref[i : i + n])
        seen[key] = -1 if key in seen else i  # -1: occurs more than once, useless as an anchor
    candidates = [(seen.get(tuple(hyp[j : j + n]), -1), j) for j in range(len(hyp) - n + 1)]
    candidates = [(i, j) for i, j in candidates if i >= 0]
    # Longest strictly increasing run of book positions (patience sorting). On ties the later hyp
    # occurrence replaces the earlier, so of a retake's two copies the later one (usually the good
    # take) tends to be kept.
    tails: list[int] = []  # book position ending the best chain of each length
    tail_index: list[int] = []
    previous = [-1] * len(candidates)
    for k, (i, _) in enumerate(candidates):
        slot = bisect.bisect_left(tails, i)
        previous[k] = tail_index[slot - 1] if slot else -1
        if slot == len(tails):
            tails.append(i)
            tail_index.append(k)
        else:
            tails[slot] = i
            tail_index[slot] = k
    chain: list[tuple[int, int]] = []
    k = tail_index[-1] if tail_index else -1
    while k >= 0:
        chain.append(candidates[k])
        k = previous[k]
    chain.reverse()
    # Each anchor pairs its n words; consecutive anchors overlap, so only pairs past the last are kept.
    pairs: list[tuple[int, int]] = []
    for i, j in chain:
        for d in range(n):
            if not pairs or (i + d > pairs[-1][0] and j + d > pairs[-1][1]):
                pairs.append((i + d, j + d))
    return pairs


def _gap(ref: list[str], hyp: list[str], free_start: bool, free_end: bool) -> list[tuple[int, int, float]]:
    """Word-level alignment of ``hyp`` against ``ref``: substitution costs the character distance of
    the two words (0..1); a run of L skipped book words or L extra hyp words costs ``_GAP_OPEN`` + L.

    Affine gaps (Gotoh) because a skipped page is one run: with a flat cost per word, a short common
    word ("the") could pair anywhere inside the skipped page at the same cost and stretch a clip's
    text over the whole page. ``free_start``/``free_end``: book words before/after the hyp cost nothing
    (the edges of the recording). Returns (ref index, hyp index, distance) of the pairs, in order.
    """
    h, r = len(hyp), len(ref)
    if h == 0 or r == 0 or (h + 1) * (r + 1) > MAX_DP_CELLS:
        return []
    sub = cdist(hyp, ref, scorer=Levenshtein.normalized_distance, dtype=np.float64)
    cols = np.arange(r + 1, dtype=np.float64)
    # Per cell, how it was reached (bits): the best is a deletion run / the non-deletion best is an
    # insertion / the insertion run extends one / the deletion run extends one.
    moves = np.zeros((h + 1, r + 1), dtype=np.uint8)
    best = np.zeros(r + 1) if free_start else cols + _GAP_OPEN
    best[0] = 0.0
    inserting = np.full(r + 1, np.inf)
    for i in range(1, h + 1):
        opened = best + _GAP_OPEN + 1
        extend_ins = inserting + 1 < opened
        inserting = np.where(extend_ins, inserting + 1, opened)
        diagonal = np.full(r + 1, np.inf)
        diagonal[1:] = best[:-1] + sub[i - 1]
        from_ins = inserting < diagonal
        plain = np.where(from_ins, inserting, diagonal)
        # A deletion run from column k to j costs plain[k] + open + (j - k): all of them at once by a
        # running minimum of plain[k] - k.
        shifted = plain - cols
        running = np.minimum.accumulate(shifted)
        deleting = np.full(r + 1, np.inf)
        deleting[1:] = running[:-1] + cols[1:] + _GAP_OPEN
        extend_del = np.zeros(r + 1, dtype=bool)
        extend_del[1:] = running[:-1] < shifted[:-1]  # its best start is before j - 1
        from_del = deleting < plain
        best = np.where(from_del, deleting, plain)
        moves[i] = from_del | (from_ins << 1) | (extend_ins << 2) | (extend_del << 3)
    i, j = h, int(np.argmin(best)) if free_end else r
    state = "best"
    pairs: list[tuple[int, int, float]] = []
    while i > 0:  # row 0 reached: the rest of the book side lies before this gap's hyp words
        move = int(moves[i, j])
        if state == "best" and move & 1:
            state = "del"
        elif state in ("best", "plain"):
            if move & 2:
                state = "ins"
            else:
                pairs.append((j - 1, i - 1, float(sub[i - 1, j - 1])))
                i, j, state = i - 1, j - 1, "best"
        elif state == "ins":  # a hyp word the book does not have
            i, state = i - 1, "ins" if move & 4 else "best"
        else:  # a book word the recording does not say
            j, state = j - 1, "del" if move & 8 else "plain"
    pairs.reverse()
    return pairs


def _pairs(ref: list[str], hyp: list[str]) -> list[tuple[int, int, float]]:
    """Every (book word, hyp word, distance) pair, increasing in both."""
    anchors = _anchor_chain(ref, hyp)
    out: list[tuple[int, int, float]] = []
    if not anchors:
        return _gap(ref, hyp, free_start=True, free_end=True)
    first_ref, first_hyp = anchors[0]
    lo = max(0, first_ref - 2 * first_hyp - _EDGE_SLACK)
    out += [(i + lo, j, d) for i, j, d in _gap(ref[lo:first_ref], hyp[:first_hyp], True, False)]
    for (ri, hj), (rn, hn) in zip(anchors, [*anchors[1:], (-1, -1)], strict=True):
        out.append((ri, hj, 0.0))
        if rn < 0:
            break
        if hn > hj + 1:
            out += [(i + ri + 1, j + hj + 1, d) for i, j, d in _gap(ref[ri + 1 : rn], hyp[hj + 1 : hn], False, False)]
    last_ref, last_hyp = anchors[-1]
    hi = min(len(ref), last_ref + 1 + 2 * (len(hyp) - last_hyp) + _EDGE_SLACK)
    tail = _gap(ref[last_ref + 1 : hi], hyp[last_hyp + 1 :], False, True)
    out += [(i + last_ref + 1, j + last_hyp + 1, d) for i, j, d in tail]
    return _late_takes(out, ref, hyp)


def _late_takes(pairs: list[tuple[int, int, float]], ref: list[str], hyp: list[str]) -> list[tuple[int, int, float]]:
    """The same alignment with each run of extra hyp words moved as early as the words allow.

    A retake leaves one copy unpaired; where both copies read a word alike, either could be paired
    with it, and the chain may pair the start of the first copy ("The keeper") and the rest of the
    second. Pairing the later copy wherever the words agree keeps one take whole (the later one, as
    narrators redo a take after a slip) and leaves the other unaligned. A word the copies read
    differently (a slip, an ASR error) is crossed when most of the next words before it agree.
    """
    for k in range(len(pairs) - 2, -1, -1):
        while k >= 0:
            word, at, distance = pairs[k]
            target = pairs[k + 1][1] - 1
            if pairs[k + 1][0] != word + 1 or target <= at:
                break
            if hyp[target] != hyp[at]:
                ahead = [
                    pairs[k - m][0] == word - m
                    and target - m > pairs[k - m][1]
                    and hyp[target - m] == hyp[pairs[k - m][1]]
                    for m in range(1, min(k, _LOOKAHEAD) + 1)
                ]
                if sum(ahead) < _LOOKAHEAD - 1:
                    break
                distance = Levenshtein.normalized_distance(hyp[target], ref[word])
            pairs[k] = (word, target, distance)
            k -= 1
    return pairs


def _widen(text: str, starts: list[int], ends: list[int], first: int, last: int) -> tuple[int, int]:
    """Offsets of book words ``first..last`` with the punctuation and quotes attached to them ("Hello,"),
    but not the part of a hyphenated word that another clip reads."""
    start, end = starts[first], ends[last]
    left = start
    while left > 0 and not text[left - 1].isspace():
        left -= 1
    if first == 0 or ends[first - 1] <= left:
        start = left
    else:  # no space before: a CJK text or "dues-centes"; only opening brackets and quotes join
        while start > 0 and unicodedata.category(text[start - 1]) in ("Ps", "Pi"):
            start -= 1
    right = end
    while right < len(text) and not text[right].isspace():
        right += 1
    if last == len(starts) - 1 or starts[last + 1] >= right:
        end = right
    else:  # closing punctuation ("了。他") joins, a hyphen does not
        while end < len(text) and unicodedata.category(text[end]) in ("Pe", "Pf", "Po"):
            end += 1
    return start, end


_REACH = 6  # book words a boundary between two clips may move


def _settle_boundaries(
    ref: list[str], clips: Sequence[Sequence[str]], first: list[int], last: list[int], near: list[bool]
) -> None:
    """Move the book boundary between each two consecutive clips to where the two clips' texts differ
    least from their spans (in place). The word DP pairs words one by one, so a short word misheard at
    the end of one clip ("the mill like a leaf" heard as "the Malaykali") can pair with the same word at
    the start of the next ("and a close" for "Anna closed") and carry the words between to the wrong
    clip, and book words no clip said (a skipped heading) can join either neighbour; the clips' whole
    texts decide it right. Only clips whose spans meet (within a few words) move."""
    heard = [" ".join(" ".join(_words(w)[0]) for w in words) for words in clips]
    for a in range(len(clips) - 1):
        b = a + 1
        if not (near[a] and near[b]) or not 0 <= first[b] - last[a] <= _REACH:
            continue
        lo, hi = max(first[a] + 1, last[a] - _REACH), min(last[b], first[b] + _REACH)
        if lo > hi:
            continue
        # a reads book words first[a]..k-1, b reads k2..last[b], with k <= k2: the words between (a heading
        # the reader skipped) belong to neither, at 3/4 of their length each: a word said but misheard
        # costs less in a clip than left out, a word never said more.
        ends = {k: Levenshtein.distance(heard[a], " ".join(ref[first[a] : k])) for k in range(lo, hi + 1)}
        starts = {k: Levenshtein.distance(heard[b], " ".join(ref[k : last[b] + 1])) for k in range(lo, hi + 1)}
        end, start = min(
            ((k, k2) for k in ends for k2 in starts if k2 >= k),
            key=lambda pair: (
                ends[pair[0]] + starts[pair[1]] + 0.75 * sum(len(w) + 1 for w in ref[pair[0] : pair[1]]),
                abs(pair[0] - 1 - last[a]) + abs(pair[1] - first[b]),
            ),
        )
        last[a], first[b] = end - 1, start


def align(reference: str, clips: Sequence[Sequence[str]], language: str | None = None) -> list[ClipText | None]:
    """The book text each clip reads, in clip order. ``clips``: each clip's recognized words in
    recording order (leading spaces and punctuation are fine). None for a clip none of whose words
    matches the book (an unrelated clip, a retake whose other copy got the text, a clip with no words).
    ``language``: numbers are compared as said in it (see :func:`cer`)."""
    ref, starts, ends = _words(reference)
    hyp: list[str] = []
    owner: list[int] = []  # the clip of each hyp word
    for index, words in enumerate(clips):
        for word in words:
            pieces = _words(word)[0]
            hyp += pieces
            owner += [index] * len(pieces)
    first: list[int] = [-1] * len(clips)
    last: list[int] = [-1] * len(clips)
    near = [False] * len(clips)
    for i, j, distance in _pairs(ref, hyp):
        clip = owner[j]
        if first[clip] < 0:
            first[clip] = i
        last[clip] = i
        near[clip] = near[clip] or distance <= _NEAR
    _settle_boundaries(ref, clips, first, last, near)
    out: list[ClipText | None] = []
    for index, words in enumerate(clips):
        if not near[index]:  # only misheard-looking substitutions: not evidence the clip reads the book
            out.append(None)
            continue
        start, end = _widen(reference, starts, ends, first[index], last[index])
        text = " ".join(reference[start:end].split())
        out.append(ClipText(text, start, end, cer(" ".join(words), text, language)))
    return out
