"""Processors for the convert tests; a module of their own so spawned workers can import them."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from voxmill.convert import ChunkAudio, Processor

TAG_STEP = 0.01


@dataclass
class TagChunks(Processor):
    """Replaces each chunk's own samples by a constant that encodes its index (context left alone)."""

    name: ClassVar[str] = "tag"

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        out = np.array(chunk.samples, dtype=np.float32)
        out[chunk.pad_left : out.shape[0] - chunk.pad_right] = TAG_STEP * (chunk.index + 1)
        return out, chunk.sample_rate


@dataclass
class KillOnce(Processor):
    """SIGKILLs its own worker at chunk ``index`` the first time (a marker file remembers), else passes."""

    marker: str = ""
    index: int = 1

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        if chunk.index == self.index and not Path(self.marker).exists():
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return np.array(chunk.samples), chunk.sample_rate


@dataclass
class FailAt(Processor):
    """Raises at chunk ``index``, every time: its original audio must be kept (or --strict fails)."""

    index: int = 1

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        if chunk.index == self.index:
            raise RuntimeError(f"cannot process chunk {chunk.index}")
        return np.array(chunk.samples) * np.float32(0.5), chunk.sample_rate


@dataclass
class MonoOnly(Processor):
    """Can only make one channel (like revoice): convert mixes the input and says so."""

    channels: ClassVar[str] = "mono"

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        return np.array(chunk.samples), chunk.sample_rate


@dataclass
class FailUntil(Processor):
    """Scales by ``gain``, deterministically; raises at chunk ``index`` until the file ``marker`` exists."""

    marker: str = ""
    index: int = 1
    gain: float = 0.5

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        if chunk.index == self.index and not Path(self.marker).exists():
            raise RuntimeError(f"chunk {chunk.index} cannot be processed yet")
        return np.array(chunk.samples) * np.float32(self.gain), chunk.sample_rate


@dataclass
class NeedsMissingExtra(Processor):
    """Needs a module that is not installed: the run stops once, before any chunk or output."""

    requires: ClassVar[tuple[tuple[str, str], ...]] = (("voxmill_test_no_such_module", "voice"),)

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        raise AssertionError("never reached: preflight stops the run")


@dataclass
class SleepAt(Processor):
    """Sleeps ``seconds`` on chunk ``index`` (a hung processor, for --timeout); passes audio through."""

    index: int = 0
    seconds: float = 30.0

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        if chunk.index == self.index:
            time.sleep(self.seconds)
        return np.array(chunk.samples), chunk.sample_rate
