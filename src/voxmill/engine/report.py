"""The per-row report of a dataset run (``prepare``, ``segment``), streamed: one JSON line per row
goes to disk as the row finishes, and only counts and a few example ids per reason stay in memory,
so a corpus of millions of rows (or of 100k garbage lines) does not grow the run's memory."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from voxmill.audio.io import atomic_path
from voxmill.errors import Reason

__all__ = ["FAILURE_WORDS", "ReasonGroup", "RowReport", "reason_words"]

# A failed row's code is its Row.problem (words already) or its Failed.code (a Reason): these are
# the Reasons in words. Drop codes (DropCode) are words already.
FAILURE_WORDS: dict[str, str] = {
    Reason.ERROR: "unexpected error",
    Reason.MISSING: "audio file vanished during the run",  # its reader found it; the worker did not
    Reason.UNREADABLE: "audio file cannot be read",
    Reason.EMPTY: "empty audio",
    Reason.DECODE: "audio cannot be decoded",
    Reason.TRUNCATED: "truncated audio",
    Reason.NON_FINITE: "non-finite samples (NaN or inf)",
    Reason.ENCODE: "clip cannot be written",
    Reason.DATASET: "unusable row",
    Reason.MODEL: "model failed",
    Reason.MISSING_EXTRA: "missing extra",
    Reason.PROCESSING: "processing failed",
    Reason.TIMEOUT: "timed out",
    Reason.WORKER_DIED: "worker died",
    Reason.TRANSPORT: "cannot be sent to or from a worker",
}
_EXAMPLES = 3  # ids shown per reason


def reason_words(status: str, code: str) -> str:
    """A reason code as reports show it."""
    return FAILURE_WORDS.get(code, code) if status == "failed" else code


@dataclass(frozen=True)
class ReasonGroup:
    """The rows of one ``status`` (dropped, failed) with one ``code``: how many, and a few example ids."""

    status: str
    code: str
    count: int
    examples: tuple[str, ...]

    @property
    def words(self) -> str:
        return reason_words(self.status, self.code)


class RowReport:
    """Entries (``{"id", "source", "status", ...}``) written to ``partial`` as they come; :meth:`write`
    gives the final ``report.jsonl``. Use as a context manager around the run."""

    def __init__(self, partial: Path) -> None:
        self.partial = partial
        self.rows = 0
        self._counts: dict[str, Counter[str]] = defaultdict(Counter)
        self._examples: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self._fh: IO[str] | None = None

    def __enter__(self) -> RowReport:
        self._fh = self.partial.open("w", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def add(self, entry: dict[str, Any]) -> None:
        if self._fh is None:
            raise RuntimeError("RowReport used outside its with-block")
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.rows += 1
        self._count(entry, +1)

    def _count(self, entry: dict[str, Any], step: int) -> None:
        status = entry["status"]
        code = str(entry.get("code") or status)
        self._counts[status][code] += step
        if step > 0 and status != "ok" and len(self._examples[status][code]) < _EXAMPLES:
            self._examples[status][code].append(entry["id"])

    def write(self, path: Path, capped: Collection[str], reason: str, code: str) -> None:
        """``path`` from the streamed entries, the ``capped`` ok rows turned into drops (``reason``)."""
        if self._fh is not None:
            self._fh.flush()
        with (
            self.partial.open(encoding="utf-8") as src,
            atomic_path(path) as tmp,
            tmp.open("w", encoding="utf-8") as dst,
        ):
            for line in src:
                if capped:
                    entry = json.loads(line)
                    if entry["status"] == "ok" and entry["id"] in capped:
                        self._count(entry, -1)
                        entry.update(status="dropped", reason=reason, code=code)
                        self._count(entry, +1)
                        line = json.dumps(entry, ensure_ascii=False) + "\n"
                dst.write(line)

    def counts(self) -> dict[str, int]:
        return {status: n for status, c in self._counts.items() if (n := sum(c.values()))}

    def reasons(self) -> list[ReasonGroup]:
        """One group per (status, code) of the rows not ok, most common first within each status."""
        return [
            ReasonGroup(status, code, n, tuple(self._examples[status][code]))
            for status, counter in self._counts.items()
            if status != "ok"
            for code, n in counter.most_common()
            if n > 0
        ]
