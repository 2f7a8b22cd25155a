"""The resume journal holds data, not code: a tampered journal runs nothing and loses nothing."""

from __future__ import annotations
