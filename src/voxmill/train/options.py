"""What ``voxmill train`` can be told (:class:`TrainOptions`), checked in one place before any work, and
the model shapes a run may build: piper's qualities, and the bounds a checkpoint's own shape must keep."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from voxmill import errors
from voxmill.engine import RunOptions, check_number
from voxmill.engine.guards import check_overlap

__all__ = [
    "DEFAULT_ARCHITECTURE",
    "DEVICES",
    "HOP_LENGTH",
    "MAX_EPOCHS",
    "MAX_NAME_BYTES",
    "QUALITIES",
    "TrainOptions",
    "architecture",
    "architecture_problem",
    "name_problem",
    "plain_lists",
    "plain_voice",
    "quality_of",
]

DEVICES = ("auto", "cpu", "cuda")
# VitsModel's own defaults (piper-tts 1.8) for the arguments a quality changes: the "medium" model.
DEFAULT_ARCHITECTURE: dict[str, Any] = {
    "hidden_channels": 192,
    "inter_channels": 192,
    "filter_channels": 768,
    "resblock": "2",
    "resblock_kernel_sizes": [3, 5, 7],
    "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]],
    "upsample_rates": [8, 8, 4],
    "upsample_initial_channel": 256,
    "upsample_kernel_sizes": [16, 16, 8],
}
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
# A voice's files are NAME-EPOCH[-stepSTEP].onnx.json, written through a temporary name ~50 bytes longer:
# 120 bytes of name (40 Chinese characters, 60 Russian, 120 ASCII) keep every one under NAME_MAX (255).
MAX_NAME_BYTES = 120
# Bounds on what a checkpoint's hyper-parameters may ask the child to build (piper's "high" is 512/768).
MAX_CHANNELS = 4096
MAX_KERNEL = 128
HOP_LENGTH = 256  # the trainer's (VitsDataModule's) hop: a generator must upsample by exactly this


def architecture(quality: str) -> dict[str, Any]:
    """The VitsModel arguments that make ``quality``'s model."""
    return dict(QUALITIES[quality])


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def plain_lists(value: Any) -> Any:
    """Tuples as lists, all the way down: a checkpoint stores either, and they must compare equal."""
    return [plain_lists(v) for v in value] if isinstance(value, list | tuple) else value


def _ints(value: Any, low: int, high: int, length: int | None = None) -> bool:
    return (
        isinstance(value, list)
        and 0 < len(value) <= 8
        and (length is None or len(value) == length)
        and all(_whole(v) and low <= v <= high for v in value)
    )


def architecture_problem(arch: dict[str, Any]) -> str | None:
    """Why the VitsModel ``arch`` asks for cannot be built or trained here, or None."""
    full = {**DEFAULT_ARCHITECTURE, **arch}
    for key in ("hidden_channels", "inter_channels", "filter_channels", "upsample_initial_channel"):
        if not (_whole(full[key]) and 1 <= full[key] <= MAX_CHANNELS):
            return f"{key} {str(full[key])[:40]} (a whole number 1..{MAX_CHANNELS})"
    if full["hidden_channels"] % 2:  # two attention heads split the channels
        return f"hidden_channels {full['hidden_channels']} (an even number)"
    if full["resblock"] not in ("1", "2"):  # piper tests the text: a number 1 would build the other kind
        return f"resblock {str(full['resblock'])[:40]!r} ('1' or '2')"
    rates = full["upsample_rates"]
    if not _ints(rates, 1, 64):
        return f"upsample_rates {str(rates)[:60]} (up to 8 whole numbers 1..64)"
    if math.prod(rates) != HOP_LENGTH:
        return f"upsample_rates {rates} multiply to {math.prod(rates)}, not the trainer's hop length {HOP_LENGTH}"
    if not _ints(full["upsample_kernel_sizes"], 1, MAX_KERNEL, len(rates)):
        return f"upsample_kernel_sizes {str(full['upsample_kernel_sizes'])[:60]} (one per upsample rate)"
    kernels = full["resblock_kernel_sizes"]
    if not _ints(kernels, 1, MAX_KERNEL):
        return f"resblock_kernel_sizes {str(kernels)[:60]} (up to 8 whole numbers 1..{MAX_KERNEL})"
    dilations = full["resblock_dilation_sizes"]
    if not (isinstance(dilations, list) and len(dilations) == len(kernels) and all(_ints(d, 1, 64) for d in dilations)):
        return f"resblock_dilation_sizes {str(dilations)[:60]} (one list per resblock kernel)"
    return None


def quality_of(arch: dict[str, Any], preferred: str | None = None) -> str | None:
    """The quality whose model ``arch`` is (``preferred`` first: low and medium share one), or None."""
    full = {**DEFAULT_ARCHITECTURE, **{key: plain_lists(value) for key, value in arch.items()}}
    order = [preferred] if preferred else []
    for quality in [*order, "medium", "x-low", "high", "low"]:
        if {**DEFAULT_ARCHITECTURE, **QUALITIES[quality]} == full:
            return quality
    return None


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
    quality: str | None = None  # None: "medium" for a new model; a --from base's or a resumed run's own
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
        if self.quality is not None and self.quality not in QUALITIES:
            raise errors.ConfigError(f"--quality {self.quality!r}: use one of {', '.join(QUALITIES)}")
        if self.base is not None and not self.base.is_file():
            raise errors.ConfigError(f"--from {self.base}: no such checkpoint file")
        if self.name is not None and (problem := name_problem(self.name)):
            shown = self.name if len(self.name) <= 60 else self.name[:57] + "..."
            raise errors.ConfigError(f"--name {shown!r}: {problem}")
        if self.espeak_voice is not None and not plain_voice(self.espeak_voice):
            raise errors.ConfigError(f"--espeak-voice {self.espeak_voice!r}: not an espeak-ng voice name")
        if any(c in str(self.run_dir) for c in "\n\r"):
            # The run is recorded (models/trained.py) as one line; refused now, not after hours of training.
            raise errors.ConfigError(f"-o {str(self.run_dir)!r}: a run folder's path may not hold a line break")
        if self.dataset.is_file():
            # DATASET may name the folder's metadata.csv: a run folder inside that folder is refused as well.
            check_overlap([self.dataset.parent], self.run_dir, output_is_folder=True)

    @property
    def trainer_max_steps(self) -> int:
        """Lightning's max_steps (-1: none): 2 per batch, one per optimizer."""
        return -1 if self.max_steps is None else 2 * self.max_steps

    @property
    def trainer_max_epochs(self) -> int:
        return -1 if self.epochs is None else self.epochs  # -1: no limit (max steps, or until Ctrl-C)


def plain_voice(voice: str) -> bool:
    """An espeak-ng voice name ("en-us", "cmn", "pt-br"): ASCII letters, digits and -_+. only."""
    return 0 < len(voice) <= 64 and voice.isascii() and all(c.isalnum() or c in "-_+." for c in voice)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a voice (its files, and ``piper:NAME-EPOCH`` in listings), or None."""
    if not name.strip() or name != name.strip():
        return "a voice name has no leading or trailing spaces and is not empty"
    if not name.isprintable():
        return "a voice name has no line breaks or control characters"
    if name.startswith("."):
        return "a voice name does not start with '.' (its files would be hidden, or '..')"
    if any(c in name for c in "/\\:"):
        return "a voice name has no '/', '\\' or ':' (it names files, and 'piper:NAME' is parsed at the ':')"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"at most {MAX_NAME_BYTES} bytes in UTF-8 (it names the voice's files)"
    return None
