"""The primitives under the output guards (:mod:`voxmill.engine.outputs`): the overlap check between
an output and the inputs, the ``flock`` lock that names the run holding an output, and the sweep of
temp files a killed run left behind. Kept apart so each guard module stays one idea."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from voxmill import errors

__all__ = ["OutputLock", "check_overlap", "inside", "resolved", "sweep_temp_files"]


def resolved(path: Path) -> Path:
    return Path(os.path.abspath(path)).resolve()


def inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_overlap(inputs: Iterable[Path], output: Path, output_is_folder: bool) -> None:
    """Raise OutputError when ``output`` is an input, lies inside an input folder, or (for a folder
    output) holds an input: writing would overwrite the input or be read back in as input next time."""
    out = resolved(output)
    for given in inputs:
        src = resolved(given)
        same = out == src
        if not same and output.exists() and given.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(output, given)  # hard links, bind mounts
        if same:
            raise errors.OutputError(f"{output}: the output is the input {given}; choose another output")
        if given.is_dir() and inside(out, src):
            raise errors.OutputError(
                f"{output}: the output lies inside the input folder {given}; a later run would read it back "
                "as input. Choose an output outside it"
            )
        if output_is_folder and inside(src, out):
            raise errors.OutputError(
                f"{output}: the output folder holds the input {given}; writing there could overwrite it. "
                "Choose another output folder"
            )


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {int(info['pid'])} on {info['host']}, `{info['command']}`, since {started}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


class OutputLock:
    """An exclusive, non-blocking ``flock`` on ``path``; the holder's identity is written into the file."""

    def __init__(self, path: Path, output: Path) -> None:
        self.path = path
        self.output = output
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:  # a place that lets no file be made (/proc, a read-only mount) is a usage error
                # O_NOFOLLOW: a symlink planted as the lock would have its target truncated.
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                if exc.errno == errno.ELOOP and self.path.is_symlink():
                    self.path.unlink()  # never voxmill's: the link goes, not what it points at
                    continue
                raise errors.OutputError(f"{self.output}: cannot write there: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise errors.OutputError(
                    f"{self.output}: another voxmill run is writing here ({_holder(self.path)}); "
                    "wait for it to finish or choose another output"
                ) from None
            # The holder unlinks the file when it lets go: if we locked a file that was unlinked
            # meanwhile, a third run could lock the new one too. Lock what the path names now.
            try:
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(["voxmill", *sys.argv[1:]])[:300],
            "started": time.time(),
        }
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd

    def fileno(self) -> int | None:
        """The locked descriptor (None when not held): a child process that inherits it holds the lock too."""
        return self._fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


_TEMP = re.compile(r"^\.(?P<stem>.*)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp(?P<suffix>\.[^.]*)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temp_files(folder: Path, path: Path | None = None) -> list[Path]:
    """Remove temp files of ``audio.io.atomic_path`` that a dead process left in ``folder`` (only those
    for ``path`` when given). Returns what was removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if path is not None and (match["stem"] != path.stem or (match["suffix"] or "") != path.suffix):
            continue
        if int(match["pid"]) != os.getpid() and not _pid_alive(int(match["pid"])):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed
