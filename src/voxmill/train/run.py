"""``voxmill.train.run(TrainOptions) -> TrainResult``: gate, piper's trainer in a child process, export.

The order: options checked; the run folder locked (two runs into one folder would write the same
checkpoints); the plan (rows, split, speakers, symbols, fresh / fine-tune / resume); the readiness gate
(``voxmill check``; NOT READY stops here); ``trainer.csv`` and ``run.json`` written; the trainer runs
in a child (:mod:`voxmill.train.child`) whose events drive the progress bar; then the best and last
checkpoints become voices in ``RUN_DIR/voices``, each smoke-tested, and the run folder is recorded so
``voxmill voices``, ``synth`` and ``serve`` find them where they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import __version__, errors
from voxmill.audio.io import write_text_atomic
from voxmill.engine.guards import OutputLock, check_overlap, sweep_temp_files
from voxmill.train.checkpoints import best_checkpoint, is_best_name, list_checkpoints, read_checkpoint
from voxmill.train.options import TrainOptions
from voxmill.train.plan import Plan, make_plan, trainer_csv
from voxmill.train.progress import TrainProgress

__all__ = ["TrainResult", "VoiceExport", "run"]

# A checkpoint of the medium model is ~900 MB: saving it on Ctrl-C takes seconds, on a slow disk a minute.
STOP_GRACE_S = 300.0


@dataclass
class VoiceExport:
    name: str
    onnx: Path
    checkpoint: Path
    epoch: int
    step: int
    smoke_ok: bool
    smoke: str = ""


@dataclass
class TrainResult:
    run_dir: Path
    epoch: int = 0
    step: int = 0
    interrupted: bool = False
    saved_step: int | None = None  # the step a rerun resumes from (None: there is no checkpoint, it starts over)
    started_step: int = 0
    best: Path | None = None
    last: Path | None = None
    voices: list[VoiceExport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    report: Path | None = None
    device: str = ""
    seconds_per_step: float | None = None
    warm_start: dict[str, Any] | None = None  # --from: how many weights the base gave, which start fresh


def _layout(run_dir: Path) -> dict[str, Path]:
    return {
        "checkpoints": run_dir / "checkpoints",
        "to_export": run_dir / "checkpoints" / "to-export",
        "cache": run_dir / "cache",
        "voices": run_dir / "voices",
        "logs": run_dir / "logs",
        "metrics": run_dir / "metrics.jsonl",
        "config": run_dir / "config.json",
        "csv": run_dir / "trainer.csv",
        "run": run_dir / "run.json",
        "lock": run_dir / ".voxmill-train.lock",
    }


def _gate(opts: TrainOptions, plan: Plan, report_dir: Path) -> Path:
    from voxmill.check import CheckOptions, Severity
    from voxmill.check import run as check_run

    report = check_run(
        CheckOptions(
            dataset=plan.dataset,
            espeak_voice=plan.espeak_voice,
            report_dir=report_dir,
            batch_size=opts.batch_size,
            run=opts.run,
        )
    )
    html = report_dir / "report.html"
    if not report.ready:
        failed = sorted({f.id for f in report.findings if f.severity is Severity.FAIL})
        raise errors.NotReady(
            f"{plan.dataset}: NOT READY to train ({', '.join(failed[:6])}); see {html}. "
            "Fix the dataset, or pass --no-check to train anyway"
        )
    return html


def _record(plan: Plan, opts: TrainOptions, path: Path) -> None:
    """run.json: what this folder trains on. A rerun with another dataset is refused (it would resume
    weights trained for other speakers and texts); --from into a new folder is the way."""
    dataset = str(plan.dataset.resolve())
    before: Any = {}
    if path.is_file():
        try:
            before = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = {}
        if isinstance(before, dict) and before.get("dataset") not in (None, dataset) and plan.resume is not None:
            raise errors.ConfigError(
                f"{opts.run_dir} trains on {before.get('dataset')}, not {dataset}: choose a new -o "
                "(with --from a checkpoint of this run to continue from it)"
            )
    record = {
        "dataset": dataset,
        "voice_name": plan.voice_name,
        "quality": plan.quality,
        "espeak_voice": plan.espeak_voice,
        "sample_rate": plan.sample_rate,
        "num_symbols": plan.num_symbols,
        "num_speakers": plan.num_speakers,
        "speakers": plan.speakers,
        "train_rows": len(plan.train),
        "val_rows": len(plan.val),
        # A resumed fine-tune keeps naming its base: the command that started it may be run again.
        "base": str(plan.base.path.resolve())
        if plan.base
        else (before.get("base") if isinstance(before, dict) else None),
        "batch_size": opts.batch_size,
        "updated": time.time(),
        "voxmill": __version__,
    }
    write_text_atomic(path, json.dumps(record, ensure_ascii=False, indent=2) + "\n")


def _fingerprint(plan: Plan, csv_text: str) -> str:
    """What the trainer's cache was made from: the rows, each clip's file identity, rate, voice, symbols.
    The cache is named by row number and text only, so a changed clip would otherwise train stale audio."""
    digest = hashlib.sha256(csv_text.encode())
    for row in plan.train + plan.val:
        try:
            info = os.stat(str(row.audio_path))
            digest.update(f"{row.audio_path}:{info.st_size}:{info.st_mtime_ns}:{info.st_ino}\n".encode())
        except OSError:
            digest.update(f"{row.audio_path}:missing\n".encode())
    digest.update(f"{plan.sample_rate}:{plan.espeak_voice}:{plan.num_symbols}".encode())
    return digest.hexdigest()


def _prepare_cache(cache: Path, fingerprint: str) -> None:
    stamp = cache / "FINGERPRINT"
    try:
        current = stamp.read_text(encoding="utf-8").strip()
    except OSError:
        current = ""
    if current != fingerprint and cache.exists():
        shutil.rmtree(cache)  # inside the locked run folder: only the trainer's own tensors
    cache.mkdir(parents=True, exist_ok=True)
    write_text_atomic(stamp, fingerprint + "\n")


def _mos_available() -> bool:
    """UTMOS comes through torch.hub (a download); only when it is already cached does val_mos work offline."""
    home = Path(os.environ.get("TORCH_HOME") or Path.home() / ".cache" / "torch")
    return any((home / "hub").glob("tarepan_SpeechMOS*")) if (home / "hub").is_dir() else False


def _spec(opts: TrainOptions, plan: Plan, paths: dict[str, Path], train_rows: int) -> dict[str, Any]:
    device = opts.device
    return {
        "csv": str(paths["csv"].resolve()),
        "audio_dir": str(plan.dataset.resolve()),
        "cache_dir": str(paths["cache"].resolve()),
        "config_path": str(paths["config"].resolve()),
        "espeak_voice": plan.espeak_voice,
        "voice_name": plan.voice_name,
        "num_symbols": plan.num_symbols,
        "num_speakers": plan.num_speakers,
        "sample_rate": plan.sample_rate,
        "batch_size": opts.batch_size,
        "data_workers": opts.data_workers if opts.data_workers is not None else (2 if device == "cuda" else 0),
        "test_examples": min(2, len(plan.val)),
        "train_rows": train_rows,
        "mos": _mos_available(),
        "max_epochs": opts.trainer_max_epochs,
        "max_steps": opts.trainer_max_steps,
        "run_dir": str(opts.run_dir.resolve()),
        "architecture": plan.architecture,
        "checkpoints": str(paths["checkpoints"].resolve()),
        "metrics_path": str(paths["metrics"].resolve()),
        "seed": opts.seed,
        "device": device,
        "resume_from": str(plan.resume.path.resolve()) if plan.resume else None,
        "base": str(plan.base.path.resolve()) if plan.base else None,
        "export_every": opts.export_every,
        "parent": os.getpid(),
    }


class _Exporter:
    """Exports checkpoints to voices one at a time on a thread (``--export-every`` while training; the
    best and last at the end), each smoke-tested; a failed export is a warning, never lost training."""

    def __init__(self, plan: Plan, paths: dict[str, Path], result: TrainResult, progress: TrainProgress) -> None:
        self.plan, self.paths, self.result, self.progress = plan, paths, result, progress
        self.jobs: queue.Queue[tuple[Path, bool] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="voxmill-export", daemon=True)
        self.thread.start()

    def submit(self, checkpoint: Path, remove_after: bool = False) -> None:
        self.jobs.put((checkpoint, remove_after))

    def finish(self, drop_waiting: bool = False) -> None:
        """Wait for the exports; ``drop_waiting``: only for the one under way (after Ctrl-C the rest wait
        on disk in checkpoints/to-export for the next run)."""
        while drop_waiting:
            try:
                self.jobs.get_nowait()
            except queue.Empty:
                break
        self.jobs.put(None)
        self.thread.join()

    def _work(self) -> None:
        failed: list[Path] = []  # periodic checkpoints whose export failed, kept for the next run to retry
        while (job := self.jobs.get()) is not None:
            checkpoint, remove_after = job
            try:
                self._export(checkpoint)
                if remove_after:
                    checkpoint.unlink(missing_ok=True)
            except (errors.VoxmillError, OSError) as exc:
                self.result.warnings.append(f"export of {checkpoint.name} failed: {exc}")
                self.progress.say(f"warning: export of {checkpoint.name} failed: {exc}")
                if remove_after:
                    # An export that keeps failing must not keep a ~700 MB checkpoint per epoch until the
                    # disk is full: the newest waits for a retry, the older ones go.
                    for older in failed:
                        older.unlink(missing_ok=True)
                    failed = [checkpoint]

    def _name(self, info: Any) -> str:
        name = f"{self.plan.voice_name}-{info.epoch}"
        onnx = self.paths["voices"] / f"{name}.onnx"
        taken = {v.name: v.step for v in self.result.voices}
        if (name in taken and taken[name] != info.step) or (onnx.exists() and _exported_step(onnx) != info.step):
            name = f"{name}-step{info.step}"
        return name

    def _export(self, checkpoint: Path) -> None:
        from voxmill.train.export import export_voice
        from voxmill.train.smoke import smoke_test

        info = read_checkpoint(checkpoint)
        if any(v.step == info.step for v in self.result.voices):
            return  # best and last are the same weights: one voice
        name = self._name(info)
        onnx = self.paths["voices"] / f"{name}.onnx"
        if not (onnx.exists() and _exported_step(onnx) == info.step):
            self.progress.say(f"exporting {checkpoint.name} -> {onnx}")
            export_voice(
                checkpoint,
                self.paths["config"],
                onnx,
                voice_name=name,
                quality=self.plan.quality,
                dataset=self.plan.voice_name,
                step=info.step,
            )
        smoke = smoke_test(onnx)
        said = getattr(smoke, "message", "") or ""
        self.result.voices.append(VoiceExport(name, onnx, checkpoint, info.epoch, info.step, bool(smoke.ok), said))
        self.progress.say(f"voice {name}: smoke test {'passed' if smoke.ok else 'FAILED: ' + said}")


def _exported_step(onnx: Path) -> int | None:
    """The training step a run's voice holds (its config says; a rerun does not export those weights twice)."""
    try:
        made = json.loads(onnx.with_name(onnx.name + ".json").read_text(encoding="utf-8"))["voxmill"]
        if "step" in made:
            return int(made["step"])
        # Written before the step was recorded: the trainer's two optimizers count 2 per step.
        return int(made["global_step"]) // 2
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _read_events(stream: Any, on_event: Any) -> None:
    for line in stream:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            on_event(event)


def _train(opts: TrainOptions, plan: Plan, paths: dict[str, Path], spec: dict[str, Any], result: TrainResult,
           progress: TrainProgress, exporter: _Exporter, lock_fd: int | None) -> None:  # fmt: skip
    spec_path = paths["logs"] / "spec.json"
    write_text_atomic(spec_path, json.dumps(spec, ensure_ascii=False, indent=2))
    log_path = paths["logs"] / "trainer.log"
    errors_seen: list[dict[str, Any]] = []
    # Seconds per step: a running sum and count (a week of training must not grow a list), and [epoch, time]
    # of the last step.
    timing: dict[str, Any] = {"last": None, "total": 0.0, "count": 0}

    def on_event(event: dict[str, Any]) -> None:
        kind = event.get("event")
        progress.show(event)
        if kind == "start":
            result.started_step = int(event.get("step") or 0)
            result.device = str(event.get("device") or "")
        elif kind == "epoch_end":
            result.epoch = int(event.get("epoch") or 0) + 1
            result.step = int(event.get("step") or 0)
        elif kind == "batch":
            result.step = int(event.get("step") or 0)
            # Seconds per step between steps of one epoch: the first step also pays for start-up and
            # compilation, and an epoch's first for the validation and checkpoints of the one before.
            now, epoch = float(event.get("time") or 0.0), event.get("epoch")
            last = timing["last"]
            if last is not None and last[0] == epoch:
                timing["total"] += now - last[1]
                timing["count"] += 1
                result.seconds_per_step = timing["total"] / timing["count"]
            timing["last"] = (epoch, now)
        elif kind == "saved":
            path = Path(str(event.get("path")))
            if path.name == "last.ckpt":
                result.saved_step = int(event.get("step") or 0)
            if path.parent.name == "to-export":
                exporter.submit(path, remove_after=True)
        elif kind == "interrupted":
            result.interrupted = True
        elif kind == "warm_start":
            result.warm_start = event
        elif kind == "error":
            errors_seen.append(event)

    read, write = os.pipe()
    env = dict(os.environ)
    # numba caches the alignment kernel; beside voxmill's sources may be read-only (a system install).
    env.setdefault("NUMBA_CACHE_DIR", str((paths["cache"] / "numba").resolve()))
    env["PYTHONUNBUFFERED"] = "1"
    # The child holds the run folder's lock too: after a kill -9 of this process it goes on for the
    # seconds its checkpoint takes, and a rerun must not start a second trainer on the same files meanwhile.
    inherited = (write,) if lock_fd is None else (write, lock_fd)
    with open(log_path, "ab") as log:
        log.write(f"\n=== voxmill train {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        log.flush()
        child = subprocess.Popen(
            [sys.executable, "-m", "voxmill.train.child", str(spec_path), str(write)],
            pass_fds=inherited,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    os.close(write)
    stream = os.fdopen(read, "r", encoding="utf-8", errors="replace")
    with _terminate_as_interrupt() as stopping:
        try:
            try:
                _read_events(stream, on_event)
            except KeyboardInterrupt:
                # A terminal's Ctrl-C reaches the child too; a signal sent to this process alone does not.
                stopping.set()
                result.interrupted = True
                progress.say("stopping: saving a checkpoint (Ctrl-C again to stop without one)")
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGINT)
                deadline = threading.Timer(STOP_GRACE_S, child.kill)
                deadline.start()
                try:
                    _read_events(stream, on_event)
                except KeyboardInterrupt:
                    child.kill()
                finally:
                    deadline.cancel()
            code = child.wait()
        except BaseException as exc:
            # Anything else that goes wrong here (an output that went away under the progress bar, ...):
            # the trainer still saves what it trained before it stops.
            if child.poll() is None and not isinstance(exc, KeyboardInterrupt):
                stopping.set()
                stream.close()  # the child's reports now fail quietly instead of filling a pipe
                _stop_child(child)
            raise
        finally:
            stream.close()
            if child.poll() is None:
                child.kill()
                child.wait()
    if result.interrupted:
        if result.saved_step is None:
            progress.say("stopped before any checkpoint was saved: a rerun starts over")
        elif result.step > result.saved_step:
            progress.say(f"stopped without saving step {result.step}: a rerun resumes from step {result.saved_step}")
        return
    if errors_seen:
        event = errors_seen[-1]
        kind = errors.ConfigError if event.get("code") == "config" else errors.ProcessingError
        raise kind(f"training failed: {event.get('message')} (log: {log_path})")
    if code != 0:
        how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
        raise errors.ProcessingError(f"the trainer stopped ({how}); rerun to resume. Log: {log_path}")


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    """Ask the trainer to save and stop; kill it if it has not within the grace (or on another Ctrl-C)."""
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(signal.SIGINT)
    try:
        child.wait(timeout=STOP_GRACE_S)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        child.kill()


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[threading.Event]:
    """SIGTERM (a service manager stopping the run, ``kill PID``) while the trainer runs is a Ctrl-C: the
    trainer saves a checkpoint and stops. A repeated SIGTERM does not cut that save short. The event
    yielded is set once a stop is under way. Only the main thread can hold signal handlers; elsewhere a
    SIGTERM keeps its usual meaning (the child, finding its parent gone, saves and stops)."""
    stopping = threading.Event()

    def on_term(signum: int, frame: Any) -> None:
        if not stopping.is_set():
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield stopping
        return
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield stopping
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(opts: TrainOptions) -> TrainResult:
    opts.validate()
    check_overlap([opts.dataset], opts.run_dir, output_is_folder=True)
    if opts.base is not None:
        check_overlap([opts.base], opts.run_dir / "checkpoints" / opts.base.name, output_is_folder=False)
    paths = _layout(opts.run_dir)
    try:
        opts.run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise errors.OutputError(f"{opts.run_dir}: cannot create the run folder: {exc.strerror or exc}") from None
    lock = OutputLock(paths["lock"], opts.run_dir)
    lock.acquire()
    try:
        return _run_locked(opts, paths, lock.fileno())  # the trainer child holds the lock with this process
    finally:
        lock.release()


def _drop_superseded(plan: Plan, paths: dict[str, Path], progress: TrainProgress) -> None:
    """Lightning keeps the checkpoint a run resumed from even when a better one replaced it as the best
    (a resume from the best happens when last.ckpt was truncated): one best, not one more per resume."""
    start = plan.resume.path if plan.resume is not None else None
    if start is None or not is_best_name(start.name) or not start.is_file():
        return
    best = best_checkpoint(paths["checkpoints"])
    if best is not None and best.resolve() != start.resolve():
        start.unlink(missing_ok=True)
        progress.say(f"removed {start.name}: {best.name} is the best now")


def _sweep(paths: dict[str, Path]) -> None:
    """Temporaries of writers that were killed: a half checkpoint (~700 MB each), a cached tensor, a voice."""
    for folder in (paths["checkpoints"], paths["to_export"], paths["cache"], paths["voices"]):
        sweep_temp_files(folder)


def _run_locked(opts: TrainOptions, paths: dict[str, Path], lock_fd: int | None) -> TrainResult:
    _sweep(paths)  # under the lock: the processes that wrote them are gone (one alive holds the lock)
    plan = make_plan(opts, paths["checkpoints"])
    result = TrainResult(run_dir=opts.run_dir, warnings=list(plan.warnings))
    progress = TrainProgress(enabled=False if opts.quiet else None)
    for warning in plan.warnings:
        progress.say(f"warning: {warning}")
    if opts.check:
        result.report = _gate(opts, plan, opts.run_dir / "check")
    for folder in ("checkpoints", "voices", "logs"):
        paths[folder].mkdir(parents=True, exist_ok=True)
    csv_text, train_rows = trainer_csv(plan)
    _record(plan, opts, paths["run"])
    write_text_atomic(paths["csv"], csv_text)
    _prepare_cache(paths["cache"], _fingerprint(plan, csv_text))
    if plan.resume is not None:
        # Where the run stands before the trainer says anything (it says nothing when the goal is reached).
        result.started_step = result.step = result.saved_step = plan.resume.step
        result.epoch = plan.resume.epoch
        progress.say(f"resuming from {plan.resume.path.name} (epoch {plan.resume.epoch}, step {plan.resume.step})")
    spec = _spec(opts, plan, paths, train_rows)
    with progress:
        exporter = _Exporter(plan, paths, result, progress)
        for leftover in list_checkpoints(paths["to_export"])[::-1]:
            exporter.submit(leftover, remove_after=True)  # a killed run's periodic checkpoints, oldest first
        try:
            if plan.resume is not None and opts.max_steps is not None and plan.resume.step >= opts.max_steps:
                progress.say(f"step {plan.resume.step} reached: nothing to train (--max-steps {opts.max_steps})")
            else:
                _train(opts, plan, paths, spec, result, progress, exporter, lock_fd)
            if not result.interrupted:
                _drop_superseded(plan, paths, progress)
            if not result.interrupted and opts.export:
                result.best = best_checkpoint(paths["checkpoints"])
                last = paths["checkpoints"] / "last.ckpt"
                result.last = last if last.is_file() else None
                for checkpoint in (result.best, result.last):
                    if checkpoint is not None:
                        exporter.submit(checkpoint)
        finally:
            exporter.finish(drop_waiting=result.interrupted)
    if result.voices:
        from voxmill.models.trained import record_run

        record_run(opts.run_dir)
    return result
