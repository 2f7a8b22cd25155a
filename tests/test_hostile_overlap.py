"""Output versus input: an output that is an input, inside one, or holding one is refused before any work."""

from __future__ import annotations
