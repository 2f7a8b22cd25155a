"""What ``voxmill train`` can be told (:class:`TrainOptions`), checked in one place before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.engine import RunOptions, check_number

__all__ = ["DEVICES", "MAX_EPOCHS", "QUALITIES", "TrainOptions", "architecture"]

DEVICES = ("auto", "cpu", "cuda")
# Piper's model sizes. "medium" is VitsModel's defaults (what every published medium voice is);
# "x-low" is piper's small generator (about a third of the parameters: faster steps, coarser voice);
# "low" is medium's generator (piper trains it at 16 kHz; here the rate is the dataset's); "high" has
# the larger HiFi-GAN decoder. The discriminator, most of a training checkpoint, is the same for all.
QUALITIES: dict[str, dict[str, Any]] = {
    "x-low": {"hidden_channels": 96, "inter_channels": 96, "filter_channels": 384},
    "low": {},
    "medium": {},
    "high": {
        "resblock": "1",
        "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "upsample_rates": [8, 8, 2, 2],
        "upsample_initial_channel": 512,
        "upsample_kernel_sizes": [16, 16, 4, 4],
    },
}
# Beyond these a run is a typo, not a plan (a million epochs of a 10-clip set is years of CPU).
MAX_EPOCHS = 1_000_000
MAX_STEPS = 1_000_000_000
MAX_BATCH = 4096


def architecture(quality: str) -> dict[str, Any]:
    """The VitsModel arguments that make ``quality``'s model."""
    return dict(QUALITIES[quality])


@dataclass
class TrainOptions:
    """See ``voxmill train --help``. ``epochs``/``max_steps`` are totals for the run folder (a resumed
    run stops at the same place the first would have); a step is one batch (the generator and the
    discriminator are each updated once: Lightning's ``global_step`` counts 2)."""

    dataset: Path
    run_dir: Path
    base: Path | None = None  # --from: a checkpoint to fine-tune from (the usual path to a new voice)
    resume: bool = False  # require a checkpoint to resume (a rerun on a run folder resumes anyway)
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 16
    device: str = "auto"
    espeak_voice: str | None = None
    quality: str = "medium"
    export_every: int | None = None  # also export a voice every N epochs while training
    check: bool = True  # the readiness gate before any training
    name: str | None = None  # the voice's name (default: the dataset folder's name)
    export: bool = True  # export and smoke-test the best and last checkpoints at the end
    seed: int = 1234
    data_workers: int | None = None  # DataLoader workers (default: 0 on CPU, 2 with CUDA)
    quiet: bool = False
    run: RunOptions = field(default_factory=RunOptions)  # the gate's engine run (workers, backend)

    def validate(self) -> None:
        self.run.validate()
        if self.epochs is not None:
            check_number("--epochs", self.epochs, 1, MAX_EPOCHS, integer=True)
        if self.max_steps is not None:
            check_number("--max-steps", self.max_steps, 1, MAX_STEPS, integer=True)
        check_number("--batch-size", self.batch_size, 1, MAX_BATCH, integer=True)
        if self.export_every is not None:
            check_number("--export-every", self.export_every, 1, MAX_EPOCHS, integer=True)
        if self.data_workers is not None:
            check_number("--data-workers", self.data_workers, 0, 64, integer=True)
        check_number("--seed", self.seed, 0, 2**32 - 1, integer=True)
        if self.device not in DEVICES:
            raise errors.ConfigError(f"--device {self.device!r}: use one of {', '.join(DEVICES)}")
        if self.quality not in QUALITIES:
            raise errors.ConfigError(f"--quality {self.quality!r}: use one of {', '.join(QUALITIES)}")
        if self.base is not None and not self.base.is_file():
            raise errors.ConfigError(f"--from {self.base}: no such checkpoint file")
        if self.name is not None and (not self.name.strip() or not self.name.isprintable() or "/" in self.name):
            raise errors.ConfigError(f"--name {self.name!r}: a voice name is one printable word or phrase, no '/'")
        if self.name is not None and len(self.name) > 100:
            raise errors.ConfigError("--name: at most 100 characters")
        if self.espeak_voice is not None and not _plain(self.espeak_voice):
            raise errors.ConfigError(f"--espeak-voice {self.espeak_voice!r}: not an espeak-ng voice name")

    @property
    def trainer_max_steps(self) -> int:
        """Lightning's max_steps (-1: none): 2 per batch, one per optimizer."""
        return -1 if self.max_steps is None else 2 * self.max_steps

    @property
    def trainer_max_epochs(self) -> int:
        return -1 if self.epochs is None else self.epochs  # -1: no limit (max steps, or until Ctrl-C)


def _plain(voice: str) -> bool:
    return 0 < len(voice) <= 64 and all(c.isalnum() or c in "-_+." for c in voice)
