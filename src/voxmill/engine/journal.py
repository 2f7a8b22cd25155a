"""Resume support: a SQLite (WAL) record of each finished item, committed before it is yielded.

Committing before yielding means an item the caller has seen is never run again, even if the
process is SIGKILLed right after. WAL with ``synchronous=NORMAL`` makes a commit cost tens of
microseconds: it survives a killed process (the OS has the pages), only an OS crash could lose the
last few records, and those items are then simply run again.

The journal holds data, never code: values are stored as JSON (a journal lives in an output folder,
and anyone who can write there must not be able to run anything by editing it). An application
whose values are not plain JSON passes ``encode`` (value -> JSON-able data) and ``decode``
((item id, data) -> value), and ``decode`` checks what it reads: a record that does not decode (bad
JSON, wrong types, a value ``decode`` rejects with ValueError, TypeError or KeyError) counts as not
finished, so the item simply runs again. A journal file that is not a journal (garbage, another
database, a folder or a symlink put in its place) is removed and the run starts a new one.

The item id is everything that decides the item's output: an application whose items can change
between runs (a corrected transcript, another sample rate) puts a fingerprint of them in the id, so
a changed item has a new id and runs again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from voxmill.engine.outcome import Dropped, Ok, Outcome, Result

__all__ = ["Journal"]

# "records", not the "items" table of earlier versions: those held pickles, which are never read.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    value TEXT,
    reason TEXT,
    code TEXT,
    seconds REAL,
    audio_seconds REAL,
    updated REAL
)
"""
_FINISHED = ("ok", "dropped")
MAX_RECORD_BYTES = 1 << 26  # 64 MiB: far above any real record (a clip's, with a long transcript)
_NOT_DECODED = (ValueError, TypeError, KeyError)


def _plain(item_id: str, data: Any) -> Any:
    return data


class Journal:
    """Item id -> status + small result record. Ok and Dropped items count as finished; Failed are retried."""

    def __init__(
        self,
        path: str | Path,
        encode: Callable[[Any], Any] | None = None,
        decode: Callable[[str, Any], Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._encode = encode or (lambda value: value)
        self._decode = decode or _plain
        try:
            self._db, self._finished = self._open()
        except sqlite3.DatabaseError:  # not a database, a foreign or damaged one: nothing is finished
            self._discard(everything=True)
            self._db, self._finished = self._open()

    def _files(self) -> list[Path]:
        return [self.path.with_name(self.path.name + suffix) for suffix in ("", "-wal", "-shm", "-journal")]

    def _discard(self, everything: bool) -> None:
        """Remove the journal's files (``everything``), or those that are not regular files: SQLite
        follows a symlink, and one planted in an output folder would have it write a file elsewhere."""
        for path in self._files():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif path.is_symlink() or (path.exists() and (everything or not path.is_file())):  # a FIFO would hang
                with contextlib.suppress(OSError):
                    path.unlink()

    def _open(self) -> tuple[sqlite3.Connection, set[str]]:
        self._discard(everything=False)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("DROP TABLE IF EXISTS items")
            db.execute(_SCHEMA)
            marks = ",".join("?" * len(_FINISHED))
            rows = db.execute(f"SELECT id FROM records WHERE status IN ({marks})", _FINISHED)
            return db, {row[0] for row in rows if isinstance(row[0], str)}
        except sqlite3.DatabaseError:
            db.close()
            raise

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return len(self._finished)

    def finished(self, item_id: str) -> bool:
        return item_id in self._finished

    def ids(self) -> list[str]:
        """The ids of the finished items, sorted."""
        return sorted(self._finished)

    def lookup(self, item_id: str) -> tuple[Result, float, float | None] | None:
        """The recorded result of a finished item, or None (also for a record that does not decode)."""
        if item_id not in self._finished:
            return None
        # A record is read only when it is of a sane size: a crafted one must not make the run hold gigabytes.
        row = self._db.execute(
            "SELECT status, value, reason, code, seconds, audio_seconds FROM records WHERE id = ? "
            "AND IFNULL(length(CAST(value AS BLOB)), 0) <= ? AND IFNULL(length(CAST(reason AS BLOB)), 0) <= ?",
            (item_id, MAX_RECORD_BYTES, MAX_RECORD_BYTES),
        ).fetchone()
        if row is None:
            self._finished.discard(item_id)
            return None
        try:
            return self._result(item_id, *row)
        except _NOT_DECODED:
            self._finished.discard(item_id)  # tampered or from another version: run the item again
            return None

    def _result(
        self, item_id: str, status: Any, value: Any, reason: Any, code: Any, seconds: Any, audio: Any
    ) -> tuple[Result, float, float | None]:
        result: Result
        if status == "ok":
            if not isinstance(value, str):
                raise TypeError("value is not JSON text")
            result = Ok(self._decode(item_id, json.loads(value)))
        elif status == "dropped" and isinstance(reason, str) and isinstance(code, str | None):
            result = Dropped(reason, code or "")
        else:
            raise ValueError(f"not a finished record: {status!r}")
        return result, float(seconds or 0.0), None if audio is None else float(audio)

    def record(self, outcome: Outcome) -> None:
        """Write one outcome (one autocommitted statement, so it is durable when this returns)."""
        result = outcome.result
        value: str | None = None
        reason: str | None = None
        code: str | None = None
        if isinstance(result, Ok):
            status = "ok"
            value = json.dumps(self._encode(result.value), ensure_ascii=False, allow_nan=False)
        elif isinstance(result, Dropped):
            status, reason, code = "dropped", result.reason, result.code
        else:
            status, reason, code = "failed", str(result), result.code.value  # a Reason, as reports group it
        self._db.execute(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (outcome.id, status, value, reason, code, outcome.seconds, outcome.audio_seconds, time.time()),
        )
        if status in _FINISHED:
            self._finished.add(outcome.id)
        else:
            self._finished.discard(outcome.id)

    def failed(self) -> dict[str, str]:
        """Failed item ids and their reasons (they run again on resume)."""
        return dict(self._db.execute("SELECT id, reason FROM records WHERE status = 'failed'").fetchall())

    def close(self) -> None:
        self._db.close()
