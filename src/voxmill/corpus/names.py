"""Output file names from ids: one function, injective, keeping the letters of every script.

Users' ids are Russian, Catalan or Chinese (``голос_001``, ``çà/02``, ``你好``); turning every
non-ASCII letter into ``_`` made all of them one file. Here letters and digits of every script, ``_``,
``-`` and inner dots are kept; anything else (``/``, ``%``, spaces, control characters, a leading dot)
becomes ``%XX`` per UTF-8 byte, like a URL. ``%`` itself is escaped, so two different ids never give
the same name. Names longer than a file system allows are cut and end with a digest of the whole id
(still injective short of a SHA-256 collision).

What no function can fix: file systems that fold case (macOS, Windows) or Unicode normal forms make
``Anna`` and ``anna`` one file. :func:`collision_key` says which names such a file system merges;
writers refuse the second of two such names instead of overwriting the first.
"""

from __future__ import annotations

import hashlib
import unicodedata

__all__ = ["MAX_NAME_BYTES", "collision_key", "file_name", "is_word_character"]

# 255 bytes is the limit of ext4, XFS, APFS and NTFS (in UTF-16 units there); keep room for ".flac"
# and the temp-file prefix atomic writes add (".NAME.PID-RAND.tmp").
MAX_NAME_BYTES = 200
_DIGEST = 16  # hex digits of SHA-256 kept when a name has to be cut


def _kept(ch: str, first: bool) -> bool:
    if ch in "_-":
        return True
    if ch == ".":
        return not first  # a leading dot would hide the file (and "." / ".." are not names)
    return is_word_character(ch)


def is_word_character(ch: str) -> bool:
    """Letters (L*), the marks that belong to them (M*: Hindi, Thai, combining accents) and digits (Nd)
    of every script: what output names keep as written."""
    category = unicodedata.category(ch)
    return category[0] in "LM" or category == "Nd"


def file_name(item_id: str) -> str:
    """``item_id`` as a file name stem: injective, no path separators, never empty, never hidden."""
    if not item_id:
        return "%"  # the one name no non-empty id escapes to
    out = []
    for i, ch in enumerate(item_id):
        if _kept(ch, i == 0):
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
    name = "".join(out)
    if name.endswith("."):
        name = name[:-1] + "%2E"  # Windows drops trailing dots; keep the name portable and distinct
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        digest = hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST]
        head = name.encode("utf-8")[: MAX_NAME_BYTES - _DIGEST - 1].decode("utf-8", "ignore")
        name = f"{head}~{digest}"
    return name


def collision_key(name: str) -> str:
    """The form under which case- or normalization-folding file systems compare ``name``."""
    return unicodedata.normalize("NFC", name).casefold()
