"""``voxmill train DATASET -o RUN_DIR`` and ``voxmill train-status RUN_DIR``: flags -> TrainOptions, render."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from voxmill.cli.common import BackendFlag, WorkersFlag, console, err_console, run_options, state
from voxmill.train import TrainOptions, run, run_status


def train(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Argument(help="A Piper dataset folder (from `voxmill prepare -f piper`).")],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The run folder: checkpoints, logs, voices/. Rerun on it to resume."),
    ],
    base: Annotated[
        Optional[Path],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10
        typer.Option("--from", help="Fine-tune from this checkpoint (.ckpt): the usual way to a new voice."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Require a checkpoint in the run folder to resume (a rerun resumes anyway)."),
    ] = False,
    epochs: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--epochs", help="Stop after this many epochs in all (a resumed run counts the earlier ones)."),
    ] = None,
    max_steps: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--max-steps", help="Stop after this many steps (batches) in all. Neither: until Ctrl-C."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Clips per step.")] = 16,
    device: Annotated[str, typer.Option("--device", help="auto (CUDA when there is one), cpu or cuda.")] = "auto",
    espeak_voice: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--espeak-voice", help="espeak-ng voice for phonemes (default: the dataset's config.json)."),
    ] = None,
    quality: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--quality",
            help="Model size: x-low, low, medium (default) or high. A --from base, or a run resumed, keeps its own.",
        ),
    ] = None,
    export_every: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option("--export-every", help="Also export a voice every N epochs while training."),
    ] = None,
    name: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--name", help="The voice's name (default: the dataset folder's name)."),
    ] = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip the readiness gate (voxmill check) before training.")
    ] = False,
    no_export: Annotated[bool, typer.Option("--no-export", help="Do not export voices at the end.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the run.")] = 1234,
    workers: WorkersFlag = None,
    backend: BackendFlag = None,
) -> None:
    """Train a Piper voice on a prepared dataset: gate, train (or fine-tune, or resume), export.

    The dataset is checked first (voxmill check; NOT READY stops before any training). Piper's own trainer
    then runs in a child process; Ctrl-C saves a checkpoint and stops, and running the same command again
    resumes from it. At the end the best (lowest validation mel loss) and the last checkpoints become voices
    in RUN_DIR/voices/<name>-<epoch>.onnx, each smoke-tested, and `voxmill voices`, `synth` and `serve`
    find them there. See `voxmill train-status RUN_DIR` for where a run stands.
    """
    settings = state(ctx).settings
    opts = TrainOptions(
        dataset=dataset,
        run_dir=output,
        base=base,
        resume=resume,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        device=device,
        espeak_voice=espeak_voice,
        quality=quality,
        export_every=export_every,
        check=not no_check,
        name=name,
        export=not no_export,
        seed=seed,
        quiet=settings.quiet,
        run=run_options(ctx, workers, backend),
    )
    result = run(opts)
    if result.interrupted:
        if result.saved_step is None:
            err_console.print("stopped before any checkpoint was saved; running the same command again starts over.")
        else:
            err_console.print(
                f"stopped; step {result.saved_step} is saved in {output / 'checkpoints'}. "
                "Run the same command again to resume from it."
            )
        raise typer.Exit(130)
    per_step = f", {result.seconds_per_step:.2f} s/step on {result.device}" if result.seconds_per_step else ""
    console.print(f"trained {result.run_dir}: step {result.step} (from {result.started_step}){per_step}")
    for voice in result.voices:
        verdict = "smoke test passed" if voice.smoke_ok else f"smoke test FAILED: {voice.smoke}"
        console.print(f"voice piper:{voice.name}  {voice.onnx}  (epoch {voice.epoch}, step {voice.step}; {verdict})")
    for warning in result.warnings:
        err_console.print(f"warning: {warning}")
    if any(not v.smoke_ok for v in result.voices):
        raise typer.Exit(1)
    if opts.export and (result.best or result.last) and not result.voices:
        # Trained, but the voice asked for is not there: a script's next `synth -v` must not find out.
        err_console.print(f"no voice was exported (see the warnings); rerun to try the export again: {output}")
        raise typer.Exit(1)


def train_status(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by `voxmill train -o`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Where a training run stands: epochs, steps, latest and best losses, checkpoints, exported voices."""
    status = run_status(run_dir)
    if as_json:
        typer.echo(json.dumps(status, ensure_ascii=False, indent=2, allow_nan=False))
        return
    latest, best = status["latest"] or {}, status["best"] or {}
    console.print(f"run {status['run_dir']}  (dataset {status['dataset']}, voice {status['voice_name']})")
    console.print(f"epochs {status['epochs']}, step {status['step']}")
    if latest:
        console.print(
            f"latest: epoch {latest.get('epoch')} loss_g {latest.get('loss_g')} loss_d {latest.get('loss_d')} "
            f"val_mel {latest.get('val_mel')}"
        )
    if best:
        console.print(f"best:   epoch {best.get('epoch')} val_mel {best.get('val_mel')}")
    for ckpt in status["checkpoints"]:
        where = f"epoch {ckpt.get('epoch')}, step {ckpt.get('step')}" if "error" not in ckpt else ckpt["error"]
        console.print(
            f"checkpoint {ckpt['path']}  {ckpt['bytes'] / 1e6:.0f} MB  {where}{'  best' if ckpt['best'] else ''}"
        )
    for voice in status["voices"]:
        console.print(f"voice {voice['name']}  {voice['path']}  (step {voice['step']})")
