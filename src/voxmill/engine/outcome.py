"""What the engine yields per item: an :class:`Outcome` holding ``Ok``, ``Dropped`` or ``Failed``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voxmill.errors import Reason

__all__ = ["Drop", "Dropped", "Failed", "Ok", "Outcome", "Result"]


class Drop(Exception):
    """Raise from ``Task.__call__`` to drop an item on purpose (filtered out, not failed).

    ``reason`` is the line for the user ("too short: 0.31s < 0.37s"); ``code`` the kind of reason
    ("too short"), by which reports group drops without parsing the text.
    """

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __reduce__(self) -> tuple[type[Drop], tuple[str, str]]:
        return Drop, (self.reason, self.code)  # exceptions pickle only args by default


@dataclass(frozen=True)
class Ok:
    value: Any


@dataclass(frozen=True)
class Dropped:
    reason: str
    code: str = ""


@dataclass(frozen=True)
class Failed:
    """``error`` is the exception type's name (for people and tracebacks); ``message`` its one line;
    ``traceback`` the worker's formatted traceback; ``code`` the :class:`~voxmill.errors.Reason`
    (``exc.code`` of a voxmill error, ``error`` for any other exception): what reports group by."""

    error: str
    message: str
    traceback: str = ""
    code: Reason = Reason.ERROR

    @classmethod
    def from_exception(cls, exc: BaseException, message: str | None = None, traceback: str = "") -> Failed:
        """The outcome of an item that raised ``exc``; ``message`` replaces its text (e.g. with context)."""
        code = getattr(exc, "code", None)  # SystemExit's code is its exit status: not a Reason
        return cls(
            type(exc).__name__,
            exception_text(exc) if message is None else message,
            traceback,
            code if isinstance(code, Reason) else Reason.ERROR,
        )

    def __str__(self) -> str:
        return f"{self.error}: {self.message}" if self.message else self.error


def exception_text(exc: BaseException) -> str:
    """``str(exc)``, or a stand-in when the exception's ``__str__`` itself raises: describing a failed
    item must not fail (in a worker thread that would leave the item unanswered)."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__}: its message cannot be shown>"


Result = Ok | Dropped | Failed


@dataclass(frozen=True)
class Outcome:
    """One item's result. ``index`` is its position in the input; ``id`` its journal key."""

    index: int
    id: str
    item: Any
    result: Result
    seconds: float = 0.0
    audio_seconds: float | None = None
    resumed: bool = False

    @property
    def ok(self) -> bool:
        return isinstance(self.result, Ok)

    @property
    def value(self) -> Any:
        """The task's return value; raises ValueError for a dropped or failed item."""
        if isinstance(self.result, Ok):
            return self.result.value
        raise ValueError(f"item {self.id} has no value: {self.result}")
