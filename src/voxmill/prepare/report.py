"""The per-row report of a prepare run, streamed: one JSON line per row goes to disk as the row
finishes, and only counts and a few example ids per reason stay in memory, so a corpus of millions
of rows (or of 100k garbage lines) does not grow the run's memory."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Collection
from pathlib import Path
from typing import IO, Any

from voxmill.audio.io import atomic_path

__all__ = ["FAILURE_KINDS", "RowReport"]

# Failures grouped by the exception type the worker raised (Failed.error), in words for reports.
FAILURE_KINDS = {
    "BadRow": "unusable row",
    "AudioDecodeError": "audio cannot be decoded",
    "Timeout": "timed out",
    "WorkerDied": "worker died",
}
_EXAMPLES = 3  # ids shown per reason


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
        kind = FAILURE_KINDS.get(code, code) if status == "failed" else code
        self._counts[status][kind] += step
        if step > 0 and status != "ok" and len(self._examples[status][kind]) < _EXAMPLES:
            self._examples[status][kind].append(entry["id"])

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

    def reasons(self) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, list[str]]]]:
        """Counts per (status, kind of reason), most common first, and a few example ids of each."""
        ordered = {
            status: {kind: n for kind, n in c.most_common() if n > 0}
            for status, c in self._counts.items()
            if status != "ok"
        }
        ordered = {status: kinds for status, kinds in ordered.items() if kinds}
        return ordered, {status: {k: self._examples[status][k] for k in kinds} for status, kinds in ordered.items()}
