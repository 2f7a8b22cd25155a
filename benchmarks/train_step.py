"""Seconds per training step of ``voxmill train`` (piper's trainer) on this machine, per model size.

Prepares a 16-clip two-speaker dataset of the bundled voice, trains each quality for a few steps at
batch 8 and prints the seconds per step from the second step on (the first pays for start-up).
Run alone: it uses every core.   .venv/bin/python benchmarks/train_step.py [--steps 4] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from voxmill.engine import RunOptions
from voxmill.prepare import ClipOptions, PrepareOptions, parse_source
from voxmill.prepare import run as prepare
from voxmill.train import TrainOptions, run

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from make_demo_corpus import write_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--qualities", default="x-low,medium")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", 16)
        dataset = Path(tmp) / "dataset"
        prepare(
            PrepareOptions([parse_source(str(corpus))], dataset, clip=ClipOptions(espeak_voice="en-us"),
                           val_fraction=0.25, run=RunOptions(progress=False))
        )  # fmt: skip
        rows = []
        for quality in args.qualities.split(","):
            result = run(
                TrainOptions(dataset, Path(tmp) / f"run-{quality}", max_steps=args.steps, batch_size=args.batch_size,
                             device=args.device, quality=quality, check=False, export=False, quiet=True)
            )  # fmt: skip
            rows.append((quality, result.device, result.seconds_per_step))
    print(f"{'quality':8} {'device':8} {'batch':>5} {'s/step':>8}")
    for quality, device, seconds in rows:
        shown = f"{seconds:8.2f}" if seconds else "       -"
        print(f"{quality:8} {device:8} {args.batch_size:5d} {shown}")


if __name__ == "__main__":
    main()
