"""The split the trainer sees: training clips (metadata.csv), validation clips (metadata_val.csv), an epoch's batches.

voxmill's trainer trains on the metadata.csv rows only and validates on the metadata_val.csv rows (no
random split of its own), so these counts are what a training run will do with the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voxmill.check.data import CheckData
from voxmill.check.findings import Finding, Severity, finding
from voxmill.corpus.piper import PIPER_METADATA, PIPER_VALIDATION_METADATA
from voxmill.corpus.rows import Split

__all__ = ["Epoch", "batches_per_epoch", "run"]

FIX = "voxmill prepare --val-fraction 0.1 (or --val-size N) writes validation rows to " + PIPER_VALIDATION_METADATA


def batches_per_epoch(train_clips: int, batch_size: int) -> int:
    """Batches in one epoch of piper's train loader: it drops the last ragged batch (``drop_last``) when
    there are more clips than one batch holds, and otherwise trains on them as one short batch."""
    if train_clips <= 0:
        return 0
    return train_clips // batch_size if train_clips > batch_size else 1


@dataclass(frozen=True)
class Epoch:
    """One epoch as the trainer runs it. voxmill's step is one batch; Lightning's ``global_step`` counts
    one per optimizer, and piper steps two (generator and discriminator) per batch."""

    train_clips: int
    val_clips: int
    batch_size: int

    @classmethod
    def of(cls, data: CheckData, batch_size: int) -> Epoch:
        val = sum(1 for c in data.good if c.split is Split.VALIDATION)
        return cls(len(data.good) - val, val, batch_size)

    @property
    def batches(self) -> int:
        return batches_per_epoch(self.train_clips, self.batch_size)

    def summary(self) -> dict[str, Any]:
        return {
            "train_clips": self.train_clips,
            "val_clips": self.val_clips,
            "batch_size": self.batch_size,
            "batches_per_epoch": self.batches,
            "steps_per_epoch": self.batches,
        }


def run(data: CheckData) -> list[Finding]:
    if not data.good:
        return [finding("dataset.validation", Severity.SKIP, "no clips: the split was not looked at")]
    val_rows = [r for r in data.rows if r.split is Split.VALIDATION]
    epoch = Epoch.of(data, 1)
    if epoch.train_clips == 0:
        return [
            finding(
                "dataset.validation",
                Severity.FAIL,
                f"0 training clips: every clip that decodes is a validation row ({PIPER_VALIDATION_METADATA})",
                hint=f"put the training rows in {PIPER_METADATA}",
            )
        ]
    if not val_rows:
        return [
            finding(
                "dataset.validation",
                Severity.WARN,
                f"no validation rows ({PIPER_VALIDATION_METADATA}): piper's trainer has nothing to validate on "
                "(no val_mel, so no best checkpoint); voxmill train holds out a few training clips instead",
                hint=FIX,
            )
        ]
    if epoch.val_clips == 0:
        return [
            finding(
                "dataset.validation",
                Severity.WARN,
                f"none of the {len(val_rows)} validation rows has audio that decodes: the trainer cannot validate",
                [f"{r.source}: {r.error or 'audio does not decode'}" for r in val_rows],
                "fix their audio (see the metadata and audio findings) or " + FIX,
            )
        ]
    return [
        finding(
            "dataset.validation",
            Severity.PASS,
            f"{epoch.val_clips} validation clips ({PIPER_VALIDATION_METADATA}), {epoch.train_clips} training clips",
        )
    ]
