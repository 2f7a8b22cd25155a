"""What a check says: an id, a severity, a message, the affected items and a fix hint."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_ITEMS", "Finding", "Severity", "finding", "problems"]

MAX_ITEMS = 20  # affected items listed per finding; the count says how many there are in all


class Severity(str, enum.Enum):
    """FAIL blocks training; WARN deserves a look; INFO is a fact; SKIP means not checked (never a pass)."""

    FAIL = "FAIL"
    WARN = "WARN"
    INFO = "INFO"
    SKIP = "SKIP"
    PASS = "PASS"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True)
class Finding:
    id: str
    severity: Severity
    message: str
    items: list[str] = field(default_factory=list)
    count: int = 0
    hint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "message": self.message,
            "items": self.items,
            "count": self.count,
            "hint": self.hint,
        }


def finding(check_id: str, severity: Severity, message: str, items: Iterable[str] = (), hint: str = "") -> Finding:
    listed = list(items)
    return Finding(check_id, severity, message, listed[:MAX_ITEMS], len(listed), hint)


def problems(check_id: str, items: list[str], what: str, hint: str, severity: Severity = Severity.FAIL) -> Finding:
    """``"<n> <what>"`` at ``severity`` for the affected items, or a PASS saying ``"0 <what>"``."""
    if not items:
        return finding(check_id, Severity.PASS, f"0 {what}")
    return finding(check_id, severity, f"{len(items)} {what}", items, hint)
