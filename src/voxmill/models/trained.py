"""The training run folders voxmill knows, so that the voices they export are found where they are.

``voxmill train`` records each run folder here; the registry then lists ``RUN/voices/*.onnx`` beside the
installed voices and the user's voices folder, and ``voxmill voices``, ``synth -v`` and the server
find them without a copy. The list is ``$XDG_DATA_HOME/voxmill/train-runs.txt``: one absolute path per
line, UTF-8 (bytes that are not UTF-8 survive as they are: surrogateescape), the most recently
recorded run last.

Two ``voxmill train`` processes may record at once: each holds a lock on ``train-runs.txt.lock`` while
it reads, changes and replaces the file (atomically), so neither loses the other's run. Readers take no
lock: they always see a whole file, the old one or the new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from voxmill import errors
from voxmill.config import default_voices_dir

__all__ = ["record_run", "run_folders", "runs_file"]


def runs_file() -> Path:
    """``$XDG_DATA_HOME/voxmill/train-runs.txt`` (``~/.local/share/voxmill/...``): beside the voices folder."""
    return default_voices_dir().parent / "train-runs.txt"


def _read(path: Path) -> list[Path]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:  # none yet, or unreadable: no runs known, rather than no voices at all
        return []
    # split("\n"), not splitlines(): a folder name may hold U+2028 or U+0085, which are not line breaks here.
    return [Path(line) for line in text.split("\n") if line.strip() and Path(line).is_absolute()]


def _exists(folder: Path) -> bool:
    try:
        return folder.is_dir()
    except OSError:  # a path too long for this file system, a permission denied on the way
        return False


def run_folders() -> list[Path]:
    """The recorded run folders that still exist, oldest record first. A deleted run is left out
    silently (the file drops it at the next ``record_run``; a drive not mounted now is not forgotten)."""
    return [folder for folder in dict.fromkeys(_read(runs_file())) if _exists(folder)]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def record_run(run_dir: str | Path) -> Path:
    """Remember ``run_dir`` (made absolute, as written: the folder the run wrote) as a training run; returns
    the path recorded.

    Recording a run again moves it last, so its voices win a name clash with an older run's. Runs whose
    folders no longer exist are dropped. ConfigError for a path with a line break (the list is lines).
    """
    from voxmill.audio.io import atomic_path  # only here: the registry imports this module, not soundfile

    # No expanduser: a "~x" that reached voxmill unexpanded is the folder the run wrote ("./~x"), and
    # "~nosuchuser" would raise after hours of training.
    folder = Path(os.path.abspath(run_dir))
    if "\n" in str(folder) or "\r" in str(folder):
        raise errors.ConfigError(f"{str(folder)!r}: a run folder with a line break in its path cannot be recorded")
    path = runs_file()
    with _locked(path):
        runs = [run for run in dict.fromkeys(_read(path)) if run != folder and _exists(run)]
        runs.append(folder)
        with atomic_path(path) as tmp:
            tmp.write_text("".join(f"{run}\n" for run in runs), encoding="utf-8", errors="surrogateescape")
    return folder
