"""Resume support: a SQLite (WAL) record of each finished item, committed before it is yielded.

Committing before yielding means an item the caller has seen is never run again, even if the
process is SIGKILLed right after. WAL with ``synchronous=NORMAL`` makes a commit cost tens of
microseconds: it survives a killed process (the OS has the pages), only an OS crash could lose the
last few records, and those items are then simply run again.

Values are stored pickled: a journal is a local file written by this same program; do not resume
from a journal someone else gave you.
"""

from __future__ import annotations

import pickle
import sqlite3
import time
from pathlib import Path

from voxmill.engine.outcome import Dropped, Ok, Outcome, Result

__all__ = ["Journal"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    value BLOB,
    reason TEXT,
    seconds REAL,
    audio_seconds REAL,
    updated REAL
)
"""
_FINISHED = ("ok", "dropped")


class Journal:
    """Item id -> status + small result record. Ok and Dropped items count as finished; Failed are retried."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        marks = ",".join("?" * len(_FINISHED))
        rows = self._db.execute(f"SELECT id FROM items WHERE status IN ({marks})", _FINISHED)
        self._finished = {row[0] for row in rows}

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._finished)

    def finished(self, item_id: str) -> bool:
        return item_id in self._finished

    def lookup(self, item_id: str) -> tuple[Result, float, float | None] | None:
        """The recorded result of a finished item, or None."""
        if item_id not in self._finished:
            return None
        row = self._db.execute(
            "SELECT status, value, reason, seconds, audio_seconds FROM items WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            return None
        status, blob, reason, seconds, audio_seconds = row
        result: Result = Ok(pickle.loads(blob)) if status == "ok" else Dropped(reason or "")
        return result, float(seconds or 0.0), audio_seconds

    def record(self, outcome: Outcome) -> None:
        """Write one outcome (one autocommitted statement, so it is durable when this returns)."""
        result = outcome.result
        blob: bytes | None = None
        reason: str | None = None
        if isinstance(result, Ok):
            status, blob = "ok", pickle.dumps(result.value, protocol=pickle.HIGHEST_PROTOCOL)
        elif isinstance(result, Dropped):
            status, reason = "dropped", result.reason
        else:
            status, reason = "failed", str(result)
        self._db.execute(
            "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?, ?, ?, ?)",
            (outcome.id, status, blob, reason, outcome.seconds, outcome.audio_seconds, time.time()),
        )
        if status in _FINISHED:
            self._finished.add(outcome.id)
        else:
            self._finished.discard(outcome.id)

    def failed(self) -> dict[str, str]:
        """Failed item ids and their reasons (they run again on resume)."""
        return dict(self._db.execute("SELECT id, reason FROM items WHERE status = 'failed'").fetchall())

    def close(self) -> None:
        self._db.close()
