"""Nothing left behind: temp files of killed runs, staging after success, an earlier run's outputs."""

from __future__ import annotations
