"""The ``Processor`` interface: what ``voxmill convert`` runs on each chunk, and how one is found by name."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from voxmill import errors
from voxmill.engine import WorkerContext
from voxmill.engine.task import require_extras

if TYPE_CHECKING:
    from voxmill.models import Registry

__all__ = ["BUILTIN", "CHANNEL_MODES", "ChunkAudio", "Processor", "check_range", "make_processor", "processor_class"]

# How a processor meets a multi-channel recording (``Processor.channels``).
CHANNEL_MODES = ("each", "all", "mono")

ENTRY_POINT_GROUP = "voxmill.processors"
BUILTIN = {
    "pitch": "voxmill.convert.processors.pitch:PitchShift",
    "gender": "voxmill.convert.processors.gender:ChangeGender",
    "loudness": "voxmill.convert.processors.level:Loudness",
    "revoice": "voxmill.convert.processors.revoice:Revoice",
}


@dataclass(frozen=True)
class ChunkAudio:
    """What a processor gets: one float32 chunk with ``pad_left``/``pad_right`` samples of context.

    ``samples`` is ``(frames,)``: one channel; a processor whose ``channels`` is ``"all"`` gets
    ``(frames, channels)`` for a multi-channel recording.
    """

    samples: np.ndarray
    sample_rate: int
    pad_left: int
    pad_right: int
    index: int = 0

    @property
    def core(self) -> np.ndarray:
        """The chunk's own samples, context cut off."""
        return self.samples[self.pad_left : self.samples.shape[0] - self.pad_right]


@dataclass
class Processor:
    """Subclass as a dataclass of options (they are the CLI's processor options).

    ``setup(ctx)`` runs once per worker (load models there); ``process(chunk)`` returns
    ``(samples, rate)`` covering the same time as ``chunk.samples`` (context included), at any rate:
    the stitcher places the result by time and cuts the context off. ``releases_gil`` says threads
    can run it in parallel (measured, see benchmarks/convert_vs_peers.py): ``--backend auto`` then
    uses threads, which share one copy of the models.

    ``channels`` says how a multi-channel recording is met: ``"each"`` (default) runs ``process`` on
    every channel as a mono chunk (identical channels once), so the output keeps the layout; ``"all"``
    hands ``process`` the ``(frames, channels)`` chunk and expects the same channels back (e.g. one
    gain for all); ``"mono"`` means the processor can only make one channel (it gets the mix, the
    output is mono, and convert says so).

    Before any work, in the parent: :meth:`resolve` finds the models the processor uses (it keeps their
    ``ModelSpec``s and leases them in the workers from ``ctx.models``), and :meth:`preflight` raises
    :class:`~voxmill.errors.MissingExtraError` once for a module of ``requires`` that is not installed.
    """

    name: ClassVar[str] = "processor"
    releases_gil: ClassVar[bool] = False
    channels: ClassVar[str] = "each"
    requires: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(module, extra) pairs: the optional modules ``process`` imports and the extra that installs each."""

    def resolve(self, registry: Registry) -> None:
        """Once, in the parent: look up the models this processor uses and keep their specs (a
        ModelError for a model that is not there). Workers never build a registry."""

    def preflight(self) -> None:
        """Once, in the parent, before any chunk: MissingExtraError for a missing optional module."""
        require_extras(self.requires)

    def setup(self, ctx: WorkerContext) -> None:
        """Once per worker, before its first chunk."""

    def process(self, chunk: ChunkAudio) -> tuple[np.ndarray, int]:
        raise NotImplementedError


def check_range(name: str, value: float, low: float, high: float) -> None:
    """ValueError (a ConfigError once make_processor reports it) unless ``low <= value <= high``; NaN never is."""
    if not (isinstance(value, (int, float)) and low <= value <= high):
        raise ValueError(f"{name} {value}: must be within {low:g}..{high:g}")


def _load(target: str, name: str) -> type[Processor]:
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise errors.ConfigError(f"--processor {name}: cannot load {target} ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, Processor)):
        raise errors.ConfigError(f"--processor {name}: {target} is not a voxmill Processor subclass")
    if cls.channels not in CHANNEL_MODES:
        raise errors.ConfigError(f"--processor {name}: channels {cls.channels!r} is not one of {CHANNEL_MODES}")
    return cls


def processor_class(name: str) -> type[Processor]:
    """A built-in name, an entry point of group ``voxmill.processors``, or ``module:Class``."""
    if name in BUILTIN:
        return _load(BUILTIN[name], name)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name == name:
            return _load(point.value, name)
    if ":" in name:
        return _load(name, name)
    known = sorted({*BUILTIN, *(p.name for p in entry_points(group=ENTRY_POINT_GROUP))})
    raise errors.ConfigError(f"--processor {name}: unknown; use one of {', '.join(known)} or module:Class")


def make_processor(name: str, options: dict[str, Any]) -> Processor:
    """The processor ``name`` with those of ``options`` it has fields for (unknown keys are an error)."""
    cls = processor_class(name)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # options, not what resolve() sets
    unknown = sorted(set(options) - set(fields))
    if unknown:
        have = ", ".join(sorted(fields)) or "none"
        raise errors.ConfigError(f"--processor {name}: no option {', '.join(unknown)} (it has: {have})")
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise errors.ConfigError(f"--processor {name}: {exc}") from None
