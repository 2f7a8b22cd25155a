"""Verdicts that mean something: empty, silent or tiny datasets are not READY; empty runs are not success."""

from __future__ import annotations
