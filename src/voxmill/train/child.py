"""The training process: piper's own trainer (its LightningCLI) with voxmill's split, checkpoints and reports.

``python -m voxmill.train.child SPEC.json EVENTS_FD`` is started by :mod:`voxmill.train.run` and is the
only place torch, Lightning and piper's trainer are imported. What it adds to ``python -m piper.train fit``:

- the monotonic alignment (:mod:`voxmill.train.align`) under the name the trainer imports;
- the validation set is the dataset's own validation rows (the last rows of ``trainer.csv``), not a
  random 10 % of everything, so ``voxmill check`` and the trainer count the same clips;
- checkpointing that works offline: ``val_mel`` decides the best checkpoint; ``val_mos`` (UTMOS, fetched
  by torch.hub) only when that model is already on this machine;
- checkpoints written atomically (a kill -9 mid-save leaves the previous file whole);
- a checkpoint on Ctrl-C and at the end (also mid-epoch), a warm start from ``--from`` that copies the
  weights that fit (loaded with ``weights_only``: a checkpoint file never runs code), and one JSON line
  per event on ``EVENTS_FD`` for the parent's progress bar and the run's ``metrics.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

__all__ = ["main"]

_events: TextIO | None = None
# Set by the first SIGINT/SIGTERM/SIGHUP (or the parent's death): training stops with a checkpoint.
_stop = threading.Event()
# (train rows, test examples): the first rows of trainer.csv train; the rest validate (set before the CLI runs).
_SPLIT = (0, 0)


def emit(event: str, **data: Any) -> None:
    if _events is None:
        return
    with contextlib.suppress(OSError, ValueError):  # the parent is gone: training goes on to its checkpoint
        _events.write(json.dumps({"event": event, "time": time.time(), **data}, default=str) + "\n")
        _events.flush()


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _build_classes(spec: dict[str, Any]) -> tuple[Any, Any, list[Any], list[Any]]:
    """The DataModule class, the CLI class, callbacks and plugins (imports piper's trainer)."""
    from voxmill.train import align

    align.install()
    import torch
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from lightning.pytorch.plugins.io import TorchCheckpointIO
    from piper.train.__main__ import VitsLightningCLI
    from piper.train.vits.dataset import VitsDataModule
    from torch.utils.data import Subset

    from voxmill.audio.io import atomic_path

    class SplitDataModule(VitsDataModule):
        """piper's DataModule with the dataset's own split: rows after the first ``_SPLIT[0]`` validate."""

        def prepare_data(self) -> None:
            # piper writes each cached tensor in place and trusts any file that exists: a kill mid-write
            # would leave a truncated tensor that fails some later step of every rerun. Whole files only.
            original = torch.save

            def atomic_save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
                if not isinstance(f, str | os.PathLike):
                    original(obj, f, *args, **kwargs)
                    return
                with atomic_path(Path(f)) as tmp:
                    original(obj, tmp, *args, **kwargs)

            # The trainer's config.json (the source of every exported voice's .onnx.json) is written in
            # place too: a temporary name while piper writes it, renamed when the data is ready.
            final = self.config_path
            torch.save = atomic_save
            try:
                with atomic_path(final) as tmp:
                    self.config_path = tmp
                    super().prepare_data()
            finally:
                torch.save = original
                self.config_path = final

        def setup(self, stage: str) -> None:
            super().setup(stage)
            full: Any = self.train_dataset.dataset
            train_rows, tests = _SPLIT
            train: list[int] = []
            val: list[int] = []
            for index, utt in enumerate(full.utts):
                # The trainer names cached tensors "<row number>[_<speaker id>]_<text>" (row numbers from 1).
                row = int(Path(utt.phoneme_ids_path).name.split("_", 1)[0])
                (train if row <= train_rows else val).append(index)
            self.train_dataset = Subset(full, train)
            self.val_dataset = Subset(full, val)
            self.test_dataset = Subset(full, val[:tests])
            emit("data", train=len(train), val=len(val))

    class AtomicCheckpointIO(TorchCheckpointIO):
        """Lightning writes a checkpoint in place; a kill mid-write would leave half of last.ckpt."""

        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
            with atomic_path(Path(path)) as tmp:
                super().save_checkpoint(checkpoint, tmp, storage_options)

    class ReportingCheckpoint(ModelCheckpoint):
        def _save_checkpoint(self, trainer: Any, filepath: str) -> None:
            super()._save_checkpoint(trainer, filepath)
            reporter.saved(trainer, filepath)

    class PeriodicCheckpoint(ReportingCheckpoint):
        """``--export-every``: its own class, so its state key differs from last.ckpt's (both monitor
        nothing; Lightning refuses two stateful callbacks with one key)."""

    class Reporter(Callback):
        def __init__(self) -> None:
            self.sums: dict[str, float] = {}
            self.batches = 0
            self.epoch_start = time.monotonic()
            self.last_saved_step = -1
            self.stopping = False
            # Until training starts nothing is worth saving: the weights are fresh (or, resuming, not yet
            # restored), and a save would overwrite the run's last.ckpt with an untrained model.
            self.started = False

        def saved(self, trainer: Any, path: str) -> None:
            if Path(path).name == "last.ckpt":
                self.last_saved_step = trainer.global_step
            emit("saved", path=str(path), epoch=trainer.current_epoch, step=trainer.global_step // 2)

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.started = True
            self.last_saved_step = trainer.global_step  # what the checkpoint it resumed from holds already
            emit(
                "start",
                epoch=trainer.current_epoch,
                step=trainer.global_step // 2,
                batches=_finite(trainer.num_training_batches),
                max_epochs=trainer.max_epochs,
                max_steps=trainer.max_steps // 2 if trainer.max_steps > 0 else None,
                device=str(pl_module.device),
                parameters=sum(p.numel() for p in pl_module.model_g.parameters()),
            )

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.sums, self.batches, self.epoch_start = {}, 0, time.monotonic()
            emit("epoch", epoch=trainer.current_epoch, batches=_finite(trainer.num_training_batches))

        def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, index: int) -> None:
            values = {
                key: _number(trainer.callback_metrics.get(key))
                for key in ("loss_g", "loss_d", "train_mel", "train_kl", "train_dur")
            }
            self.batches += 1
            for key, value in values.items():
                if value is not None:
                    self.sums[key] = self.sums.get(key, 0.0) + value
            emit("batch", epoch=trainer.current_epoch, batch=index + 1, step=trainer.global_step // 2, **values)

        def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.sanity_checking:
                return
            values = {key: _number(trainer.callback_metrics.get(key)) for key in ("val_mel", "val_loss", "val_mos")}
            emit("validated", epoch=trainer.current_epoch, step=trainer.global_step // 2, **values)

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if not self.batches:
                return  # a resumed run re-enters the epoch it had finished: nothing happened in it
            seconds = time.monotonic() - self.epoch_start
            means = {key: total / self.batches for key, total in self.sums.items()} if self.batches else {}
            metrics = {
                "epoch": trainer.current_epoch,
                "step": trainer.global_step // 2,
                "batches": self.batches,
                "seconds": round(seconds, 3),
                "steps_per_s": round(self.batches / seconds, 4) if seconds > 0 else None,
                **{key: round(value, 5) for key, value in means.items()},
                **{
                    key: _number(trainer.callback_metrics.get(key))
                    for key in ("val_mel", "val_loss", "val_mos")
                    if key in trainer.callback_metrics
                },
            }
            _append_metrics(Path(spec["metrics_path"]), metrics)
            emit("epoch_end", **metrics)

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            # max_steps can stop mid-epoch, after the last end-of-epoch save: keep that progress too.
            if self.started and trainer.global_step != self.last_saved_step and not self.stopping:
                self.stopping = True
                trainer.save_checkpoint(str(Path(spec["checkpoints"]) / "last.ckpt"))
                self.saved(trainer, str(Path(spec["checkpoints"]) / "last.ckpt"))

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            # KeyboardInterrupt: Ctrl-C, SIGTERM, SIGHUP or the parent's death (see _on_signal); SystemExit:
            # Lightning's own SIGTERM stop at a batch's end.
            if not isinstance(exception, KeyboardInterrupt | SystemExit):
                return
            if not self.started or trainer.global_step == self.last_saved_step:
                emit("interrupted", step=trainer.global_step // 2, saved=False)
                return
            self.stopping = True
            last = Path(spec["checkpoints"]) / "last.ckpt"
            trainer.save_checkpoint(str(last))
            self.saved(trainer, str(last))
            emit("interrupted", step=trainer.global_step // 2, saved=True, path=str(last))

    class WarmStart(Callback):
        """Copy the base checkpoint's weights whose name and shape fit; the rest starts fresh (a
        single-speaker base has no speaker embedding ``emb_g`` or ``cond_layer`` for a multi-speaker set)."""

        def __init__(self, path: str) -> None:
            self.path = path

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            # weights_only: a checkpoint is a pickle, and a pickle can run code; tensors and plain data suffice.
            state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)["state_dict"]
            own = pl_module.state_dict()
            fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            pl_module.load_state_dict({**own, **fits}, strict=True)
            fresh = sorted({k.split(".")[1] for k in own if k not in fits and k.count(".") >= 1})
            emit("warm_start", copied=len(fits), total=len(own), fresh=fresh[:20], path=self.path)

    reporter = Reporter()
    checkpoints = spec["checkpoints"]

    def best_by(metric: str, mode: str, prefix: str) -> Any:
        """The one best checkpoint by ``metric``, named ``<prefix>-epoch=E-<metric>=X.ckpt``."""
        return ReportingCheckpoint(
            dirpath=checkpoints,
            monitor=metric,
            mode=mode,
            save_top_k=1,
            filename=f"{prefix}-epoch={{epoch}}-{metric}={{{metric}:.4f}}",
            auto_insert_metric_name=False,
        )

    callbacks: list[Any] = [
        reporter,
        best_by("val_mel", "min", "best"),
        # last.ckpt at every epoch's end: ModelCheckpoint's own save_last only follows a new best, so a
        # kill after ten epochs without one would lose all ten.
        ReportingCheckpoint(dirpath=checkpoints, filename="last", monitor=None, save_top_k=1),
    ]
    if spec["mos"]:
        callbacks.append(best_by("val_mos", "max", "mos"))
    if spec.get("export_every"):
        callbacks.append(
            PeriodicCheckpoint(
                dirpath=str(Path(checkpoints) / "to-export"),
                every_n_epochs=spec["export_every"],
                save_top_k=-1,
                filename="epoch={epoch}",
                auto_insert_metric_name=False,
            )
        )
    if spec.get("base") and not spec.get("resume_from"):
        callbacks.append(WarmStart(spec["base"]))
    return SplitDataModule, VitsLightningCLI, callbacks, [AtomicCheckpointIO()]


def _finite(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _append_metrics(path: Path, metrics: dict[str, Any]) -> None:
    # One write of one line with O_APPEND: a kill leaves whole lines (a reader skips a torn last one).
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (json.dumps(metrics) + "\n").encode())
    finally:
        os.close(fd)


def _arguments(spec: dict[str, Any]) -> list[str]:
    args = [
        "fit",
        f"--seed_everything={spec['seed']}",
        f"--data.csv_path={spec['csv']}",
        f"--data.audio_dir={spec['audio_dir']}",
        f"--data.cache_dir={spec['cache_dir']}",
        f"--data.config_path={spec['config_path']}",
        f"--data.espeak_voice={spec['espeak_voice']}",
        f"--data.voice_name={spec['voice_name']}",
        f"--data.num_symbols={spec['num_symbols']}",
        f"--data.batch_size={spec['batch_size']}",
        f"--data.num_workers={spec['data_workers']}",
        # voxmill prepare trimmed each clip, and check measured the clips as they are: train on those.
        "--data.trim_silence=false",
        f"--data.num_test_examples={spec['test_examples']}",
        f"--model.num_speakers={spec['num_speakers']}",
        f"--model.sample_rate={spec['sample_rate']}",
        f"--model.mos_metric={'utmos' if spec['mos'] else 'none'}",
        f"--trainer.accelerator={spec['accelerator']}",
        "--trainer.devices=1",
        f"--trainer.max_epochs={spec['max_epochs']}",
        f"--trainer.max_steps={spec['max_steps']}",
        f"--trainer.default_root_dir={spec['run_dir']}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.log_every_n_steps=1",
    ]
    for key, value in spec["architecture"].items():
        args.append(f"--model.{key}={json.dumps(value) if isinstance(value, list) else value}")
    if spec.get("resume_from"):
        # weights_only: the trainer reloads the file voxmill read safely; never let it unpickle code.
        args += [f"--ckpt_path={spec['resume_from']}", "--weights_only=true"]
    return args


def _on_signal(signum: int, frame: Any) -> None:
    """Ctrl-C, SIGTERM (a service manager stopping the run) and SIGHUP (its terminal closed) all stop
    training with a checkpoint. Only the first: a terminal's Ctrl-C reaches this process and the parent,
    which forwards it, and a second KeyboardInterrupt would cut the checkpoint's save short. (The
    parent kills this process on a second Ctrl-C.)"""
    if _stop.is_set():
        return
    _stop.set()
    raise KeyboardInterrupt


def _watch_parent(parent: int) -> None:
    """Stop (with a checkpoint) when the parent is gone: a killed ``voxmill train`` must not leave a
    trainer running with nobody reading it."""
    while not _stop.is_set():
        time.sleep(0.5)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGINT)
            return


def main(argv: list[str]) -> int:
    global _events, _SPLIT
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    _events = os.fdopen(int(argv[1]), "w", encoding="utf-8", buffering=1)
    _SPLIT = (int(spec["train_rows"]), int(spec["test_examples"]))
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # Windows has no SIGHUP
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _on_signal)
    threading.Thread(target=_watch_parent, args=(int(spec["parent"]),), daemon=True).start()
    try:
        import torch

        if spec["device"] == "cuda" and not torch.cuda.is_available():
            emit("error", code="config", message="--device cuda: torch sees no CUDA device on this machine")
            return 2
        gpu = spec["device"] == "cuda" or (spec["device"] == "auto" and torch.cuda.is_available())
        spec["accelerator"] = "gpu" if gpu else "cpu"
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        datamodule, cli, callbacks, plugins = _build_classes(spec)
        cli(
            _vits_model(),
            datamodule,
            args=_arguments(spec),
            trainer_defaults={"callbacks": callbacks, "plugins": plugins},
            save_config_callback=None,
        )
    except SystemExit as exc:  # Lightning exits 1 after a graceful Ctrl-C (the checkpoint is saved)
        if _stop.is_set():
            return 130
        return int(exc.code or 0) if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:  # before or after the trainer ran (importing, building): nothing to save
        emit("interrupted", step=None, saved=False)
        return 130
    except Exception as exc:
        traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        emit("error", code="processing", message=f"{type(exc).__name__}: {message[:500]}")
        return 1
    if _stop.is_set():  # a stop that came as training ended normally: what it saved stands
        return 130
    emit("finished")
    return 0


def _vits_model() -> Any:
    from piper.train.vits.lightning import VitsModel

    return VitsModel


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
