"""Where a run writes: never onto or inside its inputs, one run per output at a time, and only what
voxmill wrote there is ever removed.

Every application that writes goes through one of two guards:

- :class:`OutputFolder` (``prepare -o OUT``, ``synth -o DIR``): refuses an output that is an input,
  lies inside one, or holds one; takes the folder's lock; and decides what an existing folder is. An
  empty or new folder is a fresh run. A folder an earlier voxmill run wrote is continued with
  ``resume``, replaced with ``overwrite`` (which removes exactly the files that run recorded as its
  own, never anything else), and otherwise refused. A non-empty folder voxmill did not write is
  refused unless ``overwrite`` is given; then voxmill writes beside what is there and removes none of it
  (a file of the same name as one it would write stops the run: it is never replaced).
  What a run writes is recorded in ``OUT/.voxmill/owned.json`` *before* it is written, so a run
  killed mid-write still knows its files.
- :class:`OutputFile` (``convert IN OUT.wav``, ``synth -o OUT.wav``): the overlap check, the lock,
  and the removal of temp files a killed run left beside the output.

A second run on a locked output exits 2 with an :class:`~voxmill.errors.OutputError` naming the first
(pid, host, command, start time). Locks are ``flock`` locks, so a run killed with SIGKILL holds none.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from voxmill import errors
from voxmill.engine.guards import OutputLock, check_overlap, inside, resolved, sweep_temp_files

__all__ = ["STATE_DIR", "OutputFile", "OutputFolder", "OutputLock", "check_overlap", "sweep_temp_files"]

STATE_DIR = ".voxmill"
_OWNED = "owned.json"
_LOCK = "lock"


class OutputFile:
    """Guard for a run writing one file: overlap with ``inputs`` refused, a lock held, leftovers of a
    killed run (temp files beside it) removed. Use as a context manager around the writing.

    ``state`` (``.NAME.voxmill-state`` beside the file) is the run's own folder for what a resume
    needs (a journal, finished parts): :meth:`open_state` makes it while the lock is held, and
    :meth:`clear_state` removes it once the file is written.
    """

    def __init__(self, path: Path, inputs: Sequence[Path] = ()) -> None:
        self.path = Path(path)
        self.inputs = list(inputs)
        self.state = self.path.with_name(f".{self.path.name}.voxmill-state")
        self._lock = OutputLock(self.path.with_name(f".{self.path.name}.voxmill-lock"), self.path)

    def __enter__(self) -> OutputFile:
        check_overlap(self.inputs, self.path, output_is_folder=False)
        if self.path.is_dir():
            raise errors.OutputError(f"{self.path}: is a folder; give a file name (or a folder for several inputs)")
        _make_folder(self.path.parent, self.path)
        self._lock.acquire()
        sweep_temp_files(self.path.parent, self.path)
        return self

    def open_state(self, keep: bool) -> Path:
        """The state folder, made; an earlier run's state is kept with ``keep`` (a resume), else removed.
        A symlink or file in its place, and symlinks inside, are removed (never followed): voxmill
        makes none there, and one planted would have the run write elsewhere."""
        if self.state.is_symlink() or (os.path.lexists(self.state) and not self.state.is_dir()):
            os.unlink(self.state)
        if not keep:
            self.clear_state()
        _make_folder(self.state, self.path)
        _unlink_symlinks(self.state)
        return self.state

    def clear_state(self) -> None:
        if self.state.is_dir() and not self.state.is_symlink():
            shutil.rmtree(self.state, ignore_errors=True)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._lock.release()


def _make_folder(folder: Path, output: Path) -> None:
    """``folder`` made (with parents); an unusable place is an OutputError naming the reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise errors.OutputError(f"{output}: {folder} exists and is not a folder") from None
    except NotADirectoryError:
        raise errors.OutputError(f"{output}: a part of the path is a file, not a folder") from None
    except OSError as exc:
        raise errors.OutputError(f"{output}: cannot create {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise errors.OutputError(f"{output}: {folder} is not writable")


def _unlink_symlinks(folder: Path) -> None:
    """Remove every symlink under ``folder`` (never followed). voxmill makes none in its state folder;
    one planted there (a staging folder, a staged clip) would have a resumed run write elsewhere."""
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(parent, name)
            if os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.unlink(path)


class OutputFolder:
    """Guard for a run writing into a folder; see the module docstring. Use as a context manager.

    ``state`` (``OUT/.voxmill``) is the run's own folder (journal, staging); :meth:`clear_state`
    empties it (the lock stays). :meth:`own` records files before they are written; :meth:`prune`
    removes files an earlier run wrote that this run did not write again.
    """

    def __init__(
        self,
        folder: Path,
        command: str,
        inputs: Sequence[Path] = (),
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        self.folder = Path(folder)
        self.command = command
        self.inputs = list(inputs)
        self.resume = resume
        self.overwrite = overwrite
        self.state = self.folder / STATE_DIR
        self.resumed = False  # True when an earlier run's state is kept (resume of a voxmill folder)
        self._owned: set[str] = set()
        self._lock = OutputLock(self.state / _LOCK, self.folder)

    # -- entering -------------------------------------------------------------------------------

    def __enter__(self) -> OutputFolder:
        check_overlap(self.inputs, self.folder, output_is_folder=True)
        if self.folder.exists() and not self.folder.is_dir():
            raise errors.OutputError(f"{self.folder}: exists and is not a folder")
        _make_folder(self.folder, self.folder)
        if self.state.is_symlink() or (os.path.lexists(self.state) and not self.state.is_dir()):
            # Followed, it would have voxmill write (and clean up) its state in some other folder.
            raise errors.OutputError(
                f"{self.folder}: {STATE_DIR} is a symlink or a file, not voxmill's state folder; remove it"
            )
        self._lock.acquire()
        try:
            # Looked at only under the lock: a run that held it may have just written or cleaned up.
            foreign = [e for e in os.listdir(self.folder) if e != STATE_DIR]
            self._claim(self._earlier_run(), bool(foreign))
            _unlink_symlinks(self.state)
        except BaseException:
            self._lock.release()
            raise
        return self

    def _earlier_run(self) -> bool:
        """Whether an earlier run left something here: files it recorded, or state to resume. A run
        that stopped before doing anything (a usage error found late) leaves neither."""
        previous = self._read_owned()
        if previous is not None and previous["files"]:
            return True
        with contextlib.suppress(OSError):
            return any(entry.name not in (_LOCK, _OWNED) for entry in os.scandir(self.state))
        return False

    def _claim(self, earlier: bool, occupied: bool) -> None:
        previous = self._read_owned() if earlier else None
        if previous is not None and previous.get("command") not in (None, self.command) and not self.overwrite:
            raise errors.OutputError(
                f"{self.folder}: holds the output of `voxmill {previous.get('command')}`; "
                "choose another folder, or --overwrite to replace it"
            )
        if earlier and self.resume:
            self._owned = set(previous.get("files", [])) if previous else set()
            self.resumed = True
        elif earlier and (occupied or previous is not None):
            if not self.overwrite:
                raise errors.OutputError(
                    f"{self.folder}: holds an earlier voxmill {self.command} run; --resume continues it, "
                    "--overwrite replaces it (removing only the files that run wrote)"
                )
            self._remove_owned(set(previous.get("files", [])) if previous else set())
            self.clear_state()
        elif occupied and not self.overwrite:  # --resume of nothing voxmill wrote licenses nothing
            raise errors.OutputError(
                f"{self.folder}: is not empty and was not written by voxmill; choose a new or empty folder "
                "(--overwrite writes beside what is there and removes none of it)"
            )
        else:
            self.clear_state()
        self._write_owned()

    # -- the owned-files manifest -----------------------------------------------------------------

    def _read_owned(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.state / _OWNED).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("files", []), list):
            return None
        data["files"] = [f for f in data.get("files", []) if isinstance(f, str)]
        return data

    def _write_owned(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        data = {"command": self.command, "files": sorted(self._owned)}
        tmp = self.state / f".{_OWNED}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.state / _OWNED)

    def _target(self, relative: str) -> Path | None:
        """``relative`` inside the folder, or None when it would leave it or names no file (a tampered
        manifest: ``../x``, ``/etc/passwd``, a path through a symlink, a NUL, a name too long)."""
        if not relative or "\0" in relative or os.path.isabs(relative) or ".." in Path(relative).parts:
            return None
        target = self.folder / relative
        try:
            parent = resolved(target.parent)
            if not inside(parent, resolved(self.folder)) or inside(parent, resolved(self.state)):
                return None
        except (OSError, RuntimeError, ValueError):  # too long, a symlink loop
            return None
        return target

    def _remove_owned(self, files: set[str]) -> None:
        folders: set[Path] = set()
        for relative in files:
            target = self._target(relative)
            if target is None:
                continue
            with contextlib.suppress(OSError):  # gone, a folder, not ours to remove, a name too long
                os.unlink(target)  # never follows a symlink: the link itself goes
            folders.add(target.parent)
        # Folders that held only our files go too (deepest first); a folder with anything else stays.
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            while folder != self.folder and inside(folder, self.folder):
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent

    def check_free(self, relatives: Iterable[str]) -> None:
        """Raise OutputError if writing any of ``relatives`` would replace a file voxmill did not write
        (the user's own, in a folder given with ``overwrite``) or leave the folder through a symlink.
        Applications call it before their work for the names they know then; :meth:`own` calls it too."""
        wanted = set(relatives)
        new = sorted(wanted - self._owned)
        # Every file, also those an earlier run recorded: a symlink planted since (OUT/wavs -> elsewhere)
        # would send this run's writes out of the folder. One look per parent folder.
        inside: dict[str, bool] = {}
        outside = []
        for relative in sorted(wanted):
            parent = os.path.dirname(relative)
            if parent not in inside:
                inside[parent] = self._target(relative) is not None
            if not inside[parent] or os.path.basename(relative) in ("", ".", ".."):
                outside.append(relative)
        if outside:
            raise errors.OutputError(
                f"{self.folder}: {outside[0]} would be written outside the folder (a symlink or a bad name); "
                "choose another output folder"
            )
        taken = [r for r in new if os.path.lexists(self.folder / r)]
        if taken:
            more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
            raise errors.OutputError(
                f"{self.folder}: {taken[0]}{more} exists and was not written by voxmill; it is never replaced. "
                "Move it away, or choose another output folder"
            )

    def own(self, relatives: Iterable[str]) -> None:
        """Record files (relative to the folder) as this run's before writing them; a file voxmill did
        not write is never taken over (:meth:`check_free`)."""
        wanted = set(relatives)
        self.check_free(wanted)
        if wanted - self._owned:
            self._owned |= wanted
            self._write_owned()

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Remove files earlier runs (or this one) recorded that are not in ``keep``; ``keep`` becomes
        the record. Returns what was removed."""
        keep_set = set(keep)
        stale = self._owned - keep_set
        self._remove_owned(stale)
        self._owned = keep_set
        self._write_owned()
        return sorted(stale)

    @property
    def owned(self) -> set[str]:
        return set(self._owned)

    def clear_state(self) -> None:
        """Empty the run's state folder (journal, staging); the lock and the manifest stay."""
        if not self.state.is_dir():
            return
        for entry in os.scandir(self.state):
            if entry.name in (_LOCK, _OWNED):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    # -- leaving --------------------------------------------------------------------------------

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._lock.release()
