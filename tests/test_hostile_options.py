"""Bad option values: one line naming the option and the reason, exit 2, never a traceback."""

from __future__ import annotations
