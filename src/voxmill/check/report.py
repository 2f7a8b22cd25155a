"""The report: findings + summary, the verdict, and its JSON and Markdown forms."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from voxmill.check.findings import Finding, Severity
from voxmill.engine import ThreadPlan

__all__ = ["Report", "split_of"]


def split_of(summary: dict[str, Any]) -> str:
    """``"10 training, 2 validation"``: how the summary's clips divide between the trainer's two sets."""
    return f"{summary.get('train_clips', 0)} training, {summary.get('val_clips', 0)} validation"


@dataclass
class Report:
    findings: list[Finding]
    summary: dict[str, Any]
    strict: bool = False
    plots: dict[str, Any] = field(default_factory=dict)  # the numbers the HTML plots draw
    plan: ThreadPlan | None = None  # how the clips were measured (workers, backend, threads)

    @property
    def ready(self) -> bool:
        blocking = {Severity.FAIL, Severity.WARN} if self.strict else {Severity.FAIL}
        return not any(f.severity in blocking for f in self.findings)

    @property
    def verdict(self) -> str:
        return "READY" if self.ready else "NOT READY"

    @property
    def exit_code(self) -> int:
        return 0 if self.ready else 1

    def by_id(self, check_id: str) -> list[Finding]:
        return [f for f in self.findings if f.id == check_id]

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for f in self.findings if f.severity is s) for s in Severity}

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "strict": self.strict,
            "summary": self.summary,
            "counts": self.counts(),
            "plan": self.plan.describe() if self.plan else None,
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n"

    def to_markdown(self) -> str:
        s = self.summary
        lines = [
            f"# voxmill check: {self.verdict}",
            "",
            f"- dataset: `{s.get('dataset')}`",
            f"- {s.get('clips', 0)} clips ({split_of(s)}), {s.get('hours', 0):.2f} h, "
            f"{s.get('speakers', 0)} speaker(s)",
            f"- steps per epoch at batch size {s.get('batch_size')}: {s.get('steps_per_epoch')} "
            "(one step is one batch of training clips; the last ragged batch is dropped)",
            "",
            "| check | severity | message | fix |",
            "|---|---|---|---|",
        ]
        for f in sorted(self.findings, key=lambda f: f.severity.rank):
            message = f.message.replace("|", "\\|")
            lines.append(f"| `{f.id}` | {f.severity.value} | {message} | {f.hint.replace('|', '/')} |")
        details = [f for f in self.findings if f.items]
        if details:
            lines += ["", "## Affected items", ""]
            for f in details:
                more = f" (first {len(f.items)} of {f.count})" if f.count > len(f.items) else ""
                lines.append(f"### `{f.id}` {f.severity.value}{more}")
                lines += [f"- {item}" for item in f.items]
                lines.append("")
        return "\n".join(lines) + "\n"
