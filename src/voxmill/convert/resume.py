"""``convert --resume``: the chunks of a long file a killed (or failed) run finished are not run again.

The engine's :class:`~voxmill.engine.Journal` records each finished chunk, and the chunk's processed
samples are kept as a part file in the output's state folder (``.NAME.voxmill-state/``, see
:class:`~voxmill.engine.outputs.OutputFile`). A part is written (temp + rename) before its record is
committed, and a record whose part is missing or not of the recorded shape counts as not finished,
so whatever moment a run is killed at, a rerun with ``resume`` processes only the chunks that have
no part and stitches the others from their parts: the output is the same bytes an uninterrupted run
writes. Memory stays at the engine's window: a part is read when the stitcher reaches it.

Journal ids carry a fingerprint of the input file (path, size, modification and change time, inode)
and of all that shapes a chunk's audio (slicing, output rate and channels, the processor and its
options): a changed input or option gives new ids, so every chunk runs again, and parts of other
fingerprints are removed. The change time is there because the others can be forged: a file rewritten
in place with its old size and ``os.utime`` back to its old mtime keeps them all, never its ctime.
Parts hold the float32 samples exactly (``.npy``): no encoder stands between a processed chunk and
its resumed copy.

The state folder is writable by whoever can write beside the output, so a part is taken only when
it is exactly what a worker would have made for that chunk: the id also carries the chunk's length
and context at the output rate, and a part of another shape (a crafted 800 MB one, a short one, one
of another channel count), another context, or with NaN or infinite samples is run again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import stat as stat_mode
from pathlib import Path
from typing import Any

import numpy as np

from voxmill import __version__
from voxmill.audio.slicing import SliceOptions
from voxmill.audio.stitch import to_rate
from voxmill.convert.processors.base import Processor
from voxmill.convert.task import ChunkItem, ChunkResult
from voxmill.engine import Journal, SharedArray
from voxmill.models.registry import ModelSpec

__all__ = ["ChunkJournal", "PartFile", "fingerprint"]

JOURNAL = "journal.sqlite"
PARTS = "parts"


def _field(value: object) -> str:
    return value.identity() if isinstance(value, ModelSpec) else repr(value)


def fingerprint(input_path: Path, slicing: SliceOptions, out_rate: int, channels: int, processor: Processor) -> str:
    """16 hex digits naming this input file and everything that decides its chunks' processed audio."""
    stat = os.stat(input_path)
    # A model a processor carries (revoice's voice) counts by its file's identity, not just its name:
    # a voice replaced between a killed run and --resume must not be stitched beside the old one's chunks.
    fields = {f.name: _field(getattr(processor, f.name, None)) for f in dataclasses.fields(processor)}
    identity = {
        # ctime: a file rewritten in place with its old size and mtime (os.utime) changes only that.
        "input": [
            os.path.realpath(input_path),
            stat.st_size,
            stat.st_mtime_ns,
            stat.st_ctime_ns,
            stat.st_ino,
            stat.st_dev,
        ],
        "slicing": dataclasses.asdict(slicing.checked()),
        "out_rate": out_rate,
        "channels": channels,
        "processor": [f"{type(processor).__module__}:{type(processor).__qualname__}", fields],
        "voxmill": __version__,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class PartFile:
    """A finished chunk's samples in the state folder; taking them leaves the file for a later resume."""

    path: Path

    def take(self) -> np.ndarray:
        return np.load(self.path, allow_pickle=False)

    def release(self) -> None:
        """Nothing to free: the state folder goes as a whole once the output is written."""


class ChunkJournal:
    """The finished chunks of one input in ``state`` (an OutputFile's state folder): the journal the
    engine records them in (``journal``, ``key``), and the part file of each. ``out_rate`` and
    ``channels`` are those of the processed chunks: with them the shape of every part is known."""

    def __init__(self, state: Path, fingerprint: str, out_rate: int, channels: int) -> None:
        self.fingerprint = fingerprint
        self.out_rate = out_rate
        self.channels = channels
        self.parts = state / PARTS
        if os.path.lexists(self.parts) and not self.parts.is_dir():  # a file (or FIFO) planted in its place
            os.unlink(self.parts)
        self.parts.mkdir(exist_ok=True)
        self._tidy()
        self.journal = Journal(state / JOURNAL, encode=self._encode, decode=self._decode)

    def _tidy(self) -> None:
        """Remove parts of other fingerprints (another input or options), temp files of a killed run, and
        anything that is not a regular file (a folder or FIFO named like a part would stop the run)."""
        for entry in os.scandir(self.parts):
            ours = entry.name.startswith(f"{self.fingerprint}-") and entry.name.endswith(".npy")
            if not (ours and entry.is_file(follow_symlinks=False)):
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)

    def key(self, item: ChunkItem) -> str:
        """The journal id of a chunk: its index and the frames and context its processed audio has at
        the output rate (what :func:`~voxmill.convert.task.fit` makes), under the fingerprint."""
        frames = to_rate(item.pad_left + (item.end - item.start) + item.pad_right, item.sample_rate, self.out_rate)
        return f"{self.fingerprint}:{item.index}:{frames}:{to_rate(item.pad_left, item.sample_rate, self.out_rate)}"

    def _part(self, index: int) -> Path:
        return self.parts / f"{self.fingerprint}-{index}.npy"

    def _encode(self, value: ChunkResult) -> dict[str, Any]:
        """Called by the journal before it commits a finished chunk: the part is on disk first."""
        target = self._part(value.index)
        temp = target.with_suffix(".tmp")
        audio = value.audio
        if isinstance(audio, SharedArray) and audio.data is None:
            shutil.copyfile(audio.path, temp)  # already an .npy (in shared memory): a plain copy
            shape = np.load(temp, mmap_mode="r").shape
        else:
            samples = audio.get() if isinstance(audio, SharedArray) else audio.take()  # inline (Ray) arrays
            with open(temp, "wb") as fh:  # a handle: np.save would add ".npy" to the temp name
                np.save(fh, np.ascontiguousarray(samples, dtype=np.float32), allow_pickle=False)
            shape = samples.shape
        os.replace(temp, target)
        return {"index": value.index, "pad_left": value.pad_left, "attempts": value.attempts, "shape": list(shape)}

    def _decode(self, item_id: str, data: Any) -> ChunkResult:
        """A recorded chunk, if its part is there as a worker makes it; else ValueError (it runs again)."""
        fingerprint, index, frames, pad = item_id.split(":")
        expected = [int(frames)] if self.channels == 1 else [int(frames), self.channels]
        recorded = (data["index"], data["pad_left"], data["shape"])
        if fingerprint != self.fingerprint or recorded != (int(index), int(pad), expected):
            raise ValueError("a record of another chunk")
        if not isinstance(data["attempts"], int):
            raise ValueError("not a chunk record")
        path = self._part(int(index))
        try:
            if not stat_mode.S_ISREG(os.lstat(path).st_mode):  # a symlink, a folder, a FIFO (that would block)
                raise ValueError("its part is not a file")
            part = np.load(path, mmap_mode="r", allow_pickle=False)
        except OSError as exc:  # missing, unreadable, or shorter than its header says (an OS crash mid-write)
            raise ValueError(str(exc)) from None
        # The shape first: a crafted part of any size is refused from its header, never read.
        if part.dtype != np.float32 or list(part.shape) != expected:
            raise ValueError("its part is not the one recorded")
        if not np.isfinite(part).all():  # a worker's chunk never holds NaN or inf (fit removes them)
            raise ValueError("its part holds samples that are not finite")
        return ChunkResult(int(index), PartFile(path), int(pad), data["attempts"])

    def close(self) -> None:
        self.journal.close()
