"""Two runs on one output: the second exits 2 naming the first; the first is not disturbed."""

from __future__ import annotations
