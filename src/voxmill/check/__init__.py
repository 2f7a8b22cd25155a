"""``check``: a training-readiness report for a TTS dataset and its Piper setup (config, checkpoint, voices).

The names below load on first access: engine workers import ``voxmill.check.stats`` and should not
pay for the checks, the report and their imports, which only the parent uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lazy_loader

if TYPE_CHECKING:
    from voxmill.check.findings import Finding, Severity
    from voxmill.check.report import Report
    from voxmill.check.runner import CheckOptions, run

__all__ = ["CheckOptions", "Finding", "Report", "Severity", "run"]

__getattr__, __dir__, _ = lazy_loader.attach(
    __name__,
    submod_attrs={"findings": ["Finding", "Severity"], "report": ["Report"], "runner": ["CheckOptions", "run"]},
)
