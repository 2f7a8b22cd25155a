"""Audio paths from metadata stay inside the dataset root unless --allow-outside."""

from __future__ import annotations
