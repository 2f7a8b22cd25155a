"""Output names: injective, letters of every script kept, a collision refused, never silently merged."""

from __future__ import annotations
