"""``convert --resume``: the chunks of a long file a killed (or failed) run finished are not run again.

The engine's :class:`~voxmill.engine.Journal` records each finished chunk, and the chunk's processed
samples are kept as a part file in the output's state folder (``.NAME.voxmill-state/``, see
:class:`~voxmill.engine.outputs.OutputFile`). A part is written (temp + rename) before its record is
committed, and a record whose part is missing or not of the recorded shape counts as not finished,
so whatever moment a run is killed at, a rerun with ``resume`` processes only the chunks that have
no part and stitches the others from their parts: the output is the same bytes an uninterrupted run
writes. Memory stays at the engine's window: a part is read when the stitcher reaches it.

Journal ids carry a fingerprint of the input file (path, size, modification time, inode) and of all
that shapes a chunk's audio (slicing, output rate and channels, the processor and its options): a
changed input or option gives new ids, so every chunk runs again, and parts of other fingerprints are
removed. Parts hold the float32 samples exactly (``.npy``): no encoder stands between a processed
chunk and its resumed copy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from voxmill import __version__
from voxmill.audio.slicing import SliceOptions
from voxmill.convert.processors.base import Processor
from voxmill.convert.task import ChunkItem, ChunkResult
from voxmill.engine import Journal, SharedArray

__all__ = ["ChunkJournal", "PartFile", "fingerprint"]

JOURNAL = "journal.sqlite"
PARTS = "parts"


def fingerprint(input_path: Path, slicing: SliceOptions, out_rate: int, channels: int, processor: Processor) -> str:
    """16 hex digits naming this input file and everything that decides its chunks' processed audio."""
    stat = os.stat(input_path)
    fields = {f.name: repr(getattr(processor, f.name, None)) for f in dataclasses.fields(processor)}
    identity = {
        "input": [os.path.realpath(input_path), stat.st_size, stat.st_mtime_ns, stat.st_ino],
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
    engine records them in (``journal``, ``key``), and the part file of each."""

    def __init__(self, state: Path, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.parts = state / PARTS
        self.parts.mkdir(exist_ok=True)
        self._tidy()
        self.journal = Journal(state / JOURNAL, encode=self._encode, decode=self._decode)

    def _tidy(self) -> None:
        """Remove parts of other fingerprints (another input or options) and temp files of a killed run."""
        for entry in os.scandir(self.parts):
            if not (entry.name.startswith(f"{self.fingerprint}-") and entry.name.endswith(".npy")):
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)

    def key(self, item: ChunkItem) -> str:
        """The journal id of a chunk: its index, under this input's and options' fingerprint."""
        return f"{self.fingerprint}:{item.index}"

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
        """A recorded chunk, if its part is there as recorded; else ValueError (the chunk runs again)."""
        index, pad_left, attempts, shape = data["index"], data["pad_left"], data["attempts"], data["shape"]
        if item_id != f"{self.fingerprint}:{index}" or not all(isinstance(n, int) for n in (pad_left, attempts)):
            raise ValueError("a record of another chunk")
        path = self._part(index)
        try:
            if path.is_symlink() or not path.is_file():
                raise ValueError("its part is missing")
            part = np.load(path, mmap_mode="r", allow_pickle=False)
        except OSError as exc:  # unreadable, or shorter than its header says (an OS crash mid-write)
            raise ValueError(str(exc)) from None
        if part.dtype != np.float32 or list(part.shape) != shape:
            raise ValueError("its part is not the one recorded")
        return ChunkResult(index, PartFile(path), pad_left, attempts)

    def close(self) -> None:
        self.journal.close()
