"""``voxmill.check.run(CheckOptions) -> Report``: is this dataset (and config, checkpoint, voices) ready to train?

Two stages run on the engine, each on one Pool built from ``opts.run``: every clip is measured
(:class:`~voxmill.check.stats.AnalyseClip`), then, with ``asr``, transcribed. The voices given with
``models`` are resolved by the model registry and leased from one model manager in this process.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voxmill import errors
from voxmill.check.checks import amount, asr, audio, checkpoint, metadata, setup, split, text, voices
from voxmill.check.data import CheckData
from voxmill.check.findings import Finding, Severity, finding
from voxmill.check.html import plot_data, report_folder_usable, write_report
from voxmill.check.report import Report
from voxmill.check.stats import AnalyseClip, ClipStats
from voxmill.corpus import Source, read_rows
from voxmill.engine import Failed, Ok, Pool, RunOptions, ThreadPlan, check_number
from voxmill.errors import Reason

__all__ = ["CheckOptions", "run"]


@dataclass
class CheckOptions:
    """What ``voxmill check`` can be told; see ``voxmill check --help``."""

    dataset: Path
    config: Path | None = None
    checkpoint: Path | None = None
    models: list[Path] = field(default_factory=list)
    espeak_voice: str | None = None
    asr: bool = False
    report_dir: Path | None = None
    strict: bool = False
    batch_size: int = 32
    source_format: str | None = None
    allow_outside: bool = False  # read audio that metadata names outside its dataset folder
    run: RunOptions = field(default_factory=RunOptions)  # workers, backend ("auto": process), budget, device, ...

    def validate(self) -> None:
        """Every option checked before any work: a bad one is a ConfigError (exit 2) naming it."""
        self.run.validate()
        check_number("--batch-size", self.batch_size, 1, math.inf, integer=True)
        if self.config is not None and self.config.is_dir():
            raise errors.ConfigError(f"--config {self.config}: is a folder; give the Piper config.json file")
        if self.config is not None and not self.config.is_file():
            raise errors.ConfigError(f"--config {self.config}: no such file")
        if self.report_dir is not None:
            report_folder_usable(self.report_dir)


def _load_config(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"{path}: cannot be read as JSON ({exc})"
    if not isinstance(value, dict):
        return None, f"{path}: not a JSON object"
    return value, None


def _gather(opts: CheckOptions) -> CheckData:
    dataset = opts.dataset
    if not dataset.exists():
        raise errors.DatasetError(f"{dataset}: no such file or folder")
    rows_iter, layout = read_rows(Source(dataset, format=opts.source_format), opts.allow_outside)
    rows = list(rows_iter)
    folder = dataset if dataset.is_dir() else dataset.parent
    config_path = opts.config or (folder / "config.json" if (folder / "config.json").is_file() else None)
    config, config_error = _load_config(config_path) if config_path else (None, None)
    configured = ((config or {}).get("espeak") or {}).get("voice")
    return CheckData(
        dataset,
        folder,
        layout,
        rows,
        config=config,
        config_path=config_path,
        config_error=config_error,
        espeak_voice=opts.espeak_voice or (configured if isinstance(configured, str) else None),
    )


def _analyse(data: CheckData, opts: CheckOptions) -> ThreadPlan | None:
    """Measure every clip with audio; returns the plan the stage ran on."""
    todo = [r for r in data.rows if r.error is None and (r.audio_path or r.audio_bytes)]
    pool = Pool.from_options(opts.run, description="checking", window=64)
    for outcome in pool.imap(AnalyseClip(data.espeak_voice), todo, timeout=opts.run.timeout):
        result = outcome.result
        if isinstance(result, Ok):
            data.clips.append(result.value)
        else:
            # A Failed (a worker that died twice, a timeout, a bug) keeps its code: the audio check
            # groups clips by code, never by message text.
            message, code = (
                (result.message, result.code) if isinstance(result, Failed) else (result.reason, Reason.ERROR)
            )
            data.clips.append(ClipStats.failed(outcome.item, message, code))
    return pool.plan


def _transcripts(data: CheckData, opts: CheckOptions, task: asr.Transcribe) -> dict[str, str]:
    pool = Pool.from_options(opts.run, description="transcribing")
    heard: dict[str, str] = {}
    for outcome in pool.imap(task, [c for c in data.good if c.path], ordered=False, timeout=opts.run.timeout):
        if isinstance(outcome.result, Ok):
            clip_id, said = outcome.result.value
            heard[clip_id] = said
    return heard


def run(opts: CheckOptions) -> Report:
    opts.validate()
    # A missing extra or model for --asr is one error now, not after every clip has been measured.
    transcribe = asr.Transcribe() if opts.asr else None
    if transcribe is not None:
        transcribe.preflight()
    data = _gather(opts)
    plan = _analyse(data, opts)
    findings: list[Finding] = []
    findings += metadata.run(data)
    findings += amount.run(data)
    findings += split.run(data)
    findings += audio.run(data)
    findings += text.run(data)
    findings += setup.run(data)
    configured = ((data.config or {}).get("espeak") or {}).get("voice")
    if opts.espeak_voice and isinstance(configured, str) and configured != opts.espeak_voice:
        findings.append(
            finding(
                "config.espeak_voice",
                Severity.WARN,
                f"--espeak-voice {opts.espeak_voice} but the config says {configured}",
                hint="training phonemizes with the config's voice",
            )
        )
    findings += checkpoint.run(data, opts.checkpoint)
    findings += voices.run(opts.models, opts.run)
    if transcribe is not None:
        findings += asr.run(data.good, _transcripts(data, opts, transcribe), data.espeak_voice)
    good = data.good
    summary = {
        "dataset": str(opts.dataset),
        "layout": data.layout,
        "rows": len(data.rows),
        "clips": len(good),
        "hours": round(sum(c.duration for c in good) / 3600, 4),
        "speakers": max(1, len(data.speakers)) if good else 0,
        # train_clips, val_clips, batch_size, batches_per_epoch, steps_per_epoch: what the trainer will run
        **split.Epoch.of(data, opts.batch_size).summary(),
    }
    report = Report(findings, summary, opts.strict, plot_data(data.clips), plan=plan)
    if opts.report_dir is not None:
        write_report(report, opts.report_dir)
    return report
