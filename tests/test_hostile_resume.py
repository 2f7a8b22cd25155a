"""--resume after the input or the options changed: nothing stale is kept."""

from __future__ import annotations
