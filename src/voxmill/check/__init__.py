"""``check``: a training-readiness report for a TTS dataset and its Piper setup (config, checkpoint, voices)."""

from voxmill.check.findings import Finding, Severity
from voxmill.check.report import Report
from voxmill.check.run import CheckOptions, run

__all__ = ["CheckOptions", "Finding", "Report", "Severity", "run"]
