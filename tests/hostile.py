"""Helpers for the hostile-input tests (tests/test_hostile_*.py): the CLI as a user runs it, and small
corpora of real speech written in the layouts voxmill reads."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from voxmill.audio import Audio, save

# Run flags every batch command must refuse with one line and exit 2, before any work.
BAD_RUN_FLAGS = [
    ("--backend", "bogus"),
    ("--backend", "RAY"),
    ("--workers", "abc"),
    ("--workers", "0"),
    ("--workers", "1.5"),
    ("--threads-per-worker", "abc"),
    ("--threads-per-worker", "0"),
    ("--timeout", "0"),
    ("--timeout", "nan"),
    ("--ray-address", ""),
]


def voxmill(*args: str, stdin: str | None = None, cwd: Path | None = None, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``python -m voxmill --quiet ARGS`` in a subprocess: exit code, stdout and stderr as the user sees them."""
    return subprocess.run(
        [sys.executable, "-m", "voxmill", "--quiet", *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, cwd=cwd,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    """A hostile input may fail a run, never crash it: no Python traceback on either stream."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]


def ljspeech(folder: Path, rows: Iterable[tuple[str, str]], audio: Audio, wavs: bool = True) -> Path:
    """``folder/metadata.csv`` (``id|text``) and ``folder/wavs/<id>.wav`` holding ``audio`` for each row."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for clip_id, text in rows:
        lines.append(f"{clip_id}|{text}\n")
        if wavs:
            save(folder / "wavs" / f"{clip_id}.wav", audio)
    (folder / "metadata.csv").write_text("".join(lines), encoding="utf-8")
    return folder


def folder_corpus(folder: Path, rows: Iterable[tuple[str, str]], audio: Audio) -> Path:
    """Audio files with sidecar ``.txt`` transcripts: ``folder/<name>.wav`` + ``folder/<name>.txt``."""
    for name, text in rows:
        path = folder / f"{name}.wav"
        save(path, audio)
        path.with_suffix(".txt").write_text(text, encoding="utf-8")
    return folder
