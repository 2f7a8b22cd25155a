"""``convert_file``: a long recording through a processor in parallel chunks, stitched back seamlessly.

Data flow: blocks (streamed decode) -> chunks cut in pauses (audio/slicing) -> shared memory ->
engine workers (processor) -> ordered results -> stitcher (absolute offsets, crossfades) -> the
output file, encoded as chunks arrive. Memory is the engine's window of chunks, never the file.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxmill import errors
from voxmill.audio import blocks, probe
from voxmill.audio.slicing import SliceOptions, slice_blocks
from voxmill.audio.stitch import Stitcher
from voxmill.audio.types import SourceInfo, rate_problem
from voxmill.convert.outputs import check_channels, output_path, plan_outputs
from voxmill.convert.processors.base import Processor, make_processor
from voxmill.convert.task import ChunkItem, ChunkResult, ChunkTask, fit
from voxmill.engine import Ok, Pool, RunOptions, SharedArray, check_number, share
from voxmill.engine.outputs import OutputFile

__all__ = ["ConvertOptions", "ConvertResult", "convert", "convert_file", "output_path", "plan_outputs"]

BACKENDS = ("auto", "process", "thread", "ray")
BLOCK_SECONDS = 30.0


@dataclass
class ConvertOptions:
    """How a recording is cut, run and written; see ``voxmill convert --help``."""

    slicing: SliceOptions = field(default_factory=SliceOptions)
    """Where chunks are cut (pauses, maximum length, context padding)."""
    crossfade_ms: float = 10.0
    sample_rate: int | None = None
    """Output rate; None keeps the input's."""
    workers: int | str = "auto"
    parallel: bool = True
    backend: str = "auto"
    ray_address: str | None = None  # backend "ray": the cluster to join; None starts a local Ray
    """auto: threads when the processor runs without the GIL, else processes."""
    window: int | None = None
    strict: bool = False
    """A chunk that failed twice ends the run with an error (no output) instead of keeping its original audio."""
    progress: bool | None = None
    peak_ceiling_db: float | None = -1.0
    """No output sample goes above this (dBFS): a look-ahead limiter catches a processor's overshoot,
    which a file would otherwise clip. None writes what the processor made (clipped at full scale)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first bad option, before any work."""
        RunOptions(self.workers, self.backend, self.ray_address, progress=self.progress).validate(BACKENDS)
        self.slicing.validate()
        check_number("crossfade_ms", self.crossfade_ms, 0, 1000)
        if self.sample_rate is not None:
            problem = rate_problem(self.sample_rate) if isinstance(self.sample_rate, int) else "not a whole number"
            if problem:
                raise errors.ConfigError(f"--sample-rate {self.sample_rate}: {problem}")
        if self.window is not None:
            check_number("window", self.window, 1, 100_000, integer=True)
        ceiling = self.peak_ceiling_db
        # Up to -0.1: at 0 dBFS a 16-bit file would still clip what rounds to full scale.
        if ceiling is not None:
            check_number("--peak-ceiling-db", ceiling, -40, -0.1)


@dataclass
class ConvertResult:
    """What one conversion did. ``kept_original``: chunks the processor failed on twice (index, second, reason).

    ``channels`` is the output's; fewer than ``input_channels`` only for a processor that makes one
    channel (``mixed_to_mono``). ``limited_frames``/``peak_reduction_db``: what the output limiter
    did to keep the processor's overshoot under the ceiling.
    """

    input: Path
    output: Path
    seconds: float
    sample_rate: int
    chunks: int
    silent_chunks: int
    backend: str
    workers: int
    wall_seconds: float
    joins: list[int] = field(default_factory=list)
    kept_original: list[tuple[int, float, str]] = field(default_factory=list)
    channels: int = 1
    input_channels: int = 1
    limited_frames: int = 0
    peak_reduction_db: float = 0.0

    @property
    def mixed_to_mono(self) -> bool:
        return self.channels < self.input_channels

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "output": str(self.output),
            "seconds": round(self.seconds, 3),
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "input_channels": self.input_channels,
            "chunks": self.chunks,
            "silent_chunks": self.silent_chunks,
            "backend": self.backend,
            "workers": self.workers,
            "wall_seconds": round(self.wall_seconds, 3),
            "x_realtime": round(self.seconds / self.wall_seconds, 2) if self.wall_seconds else None,
            "limited_frames": self.limited_frames,
            "peak_reduction_db": round(self.peak_reduction_db, 2),
            "kept_original": [{"chunk": i, "at_seconds": round(t, 2), "reason": r} for i, t, r in self.kept_original],
        }


def _backend(opts: ConvertOptions, processor: Processor) -> str:
    if opts.backend not in BACKENDS:
        raise errors.ConfigError(f"--backend {opts.backend}: use one of {', '.join(BACKENDS)}")
    if not opts.parallel:
        return "serial"
    if opts.backend == "auto":
        return "thread" if processor.releases_gil else "process"
    return opts.backend


def output_channels(info: SourceInfo, processor: Processor) -> int:
    """The input's channel count, or 1 for a processor that can only make one channel."""
    return 1 if processor.channels == "mono" else info.channels


def _items(
    path: Path, opts: ConvertOptions, mono: bool, live: dict[int, SharedArray], counts: dict[str, int], total: int
) -> Iterator[ChunkItem]:
    for chunk in slice_blocks(blocks(path, seconds=BLOCK_SECONDS, mono=mono), opts.slicing, total):
        shared = share(chunk.samples)
        live[chunk.index] = shared
        counts["chunks"] += 1
        counts["silent"] += chunk.silent
        yield ChunkItem(
            chunk.index, chunk.start, chunk.end, chunk.pad_left, chunk.pad_right, shared, chunk.sample_rate,
            chunk.silent, chunk.forced_start, chunk.forced_end,
        )  # fmt: skip


def convert_file(
    input_path: str | Path, output: str | Path, processor: Processor | str, opts: ConvertOptions | None = None
) -> ConvertResult:
    """Run ``processor`` (an instance or a name) over ``input_path`` and write ``output`` (atomically).

    The output keeps the input's channels (a processor that makes one channel mixes them, and the
    result says so) and never clips (``peak_ceiling_db``). The output is guarded: never the input,
    one run at a time, temp files of a killed run removed. Raises AudioDecodeError for unreadable
    input, ConfigError (OutputError) for bad options or an unusable output, and ProcessingError with
    ``strict`` when a chunk failed twice (otherwise that chunk keeps its original audio).
    """
    opts = opts or ConvertOptions()
    opts.validate()
    input_path, output = Path(input_path), Path(output)
    proc = make_processor(processor, {}) if isinstance(processor, str) else processor
    backend = _backend(opts, proc)
    info = probe(input_path)
    channels = output_channels(info, proc)
    check_channels(output, channels)
    with OutputFile(output, inputs=[input_path]):
        result = _convert(input_path, output, proc, opts, backend, info, channels)
    return result


def _convert(
    input_path: Path, output: Path, proc: Processor, opts: ConvertOptions, backend: str, info: SourceInfo, channels: int
) -> ConvertResult:
    in_rate = info.sample_rate
    out_rate = opts.sample_rate or in_rate
    workers: int | str = 1 if backend == "serial" else opts.workers
    # Items are streamed, so the count is unknown; the engine sizes "auto" from the file's length.
    estimate = max(1, int(info.duration // opts.slicing.max_seconds) + 1)
    plan = Pool(workers=workers, backend=backend, address=opts.ray_address).plan_for(estimate)
    # Chunks take seconds each: prefetch 1, so no chunk waits in a busy worker's pipe; a window of
    # 4 per worker, so one slow chunk at the head of the order does not idle the others.
    pool = Pool(workers=workers, backend=backend, window=opts.window or 4 * plan.workers, progress=opts.progress,
                prefetch=1, description=f"converting {input_path.name}", address=opts.ray_address)  # fmt: skip
    started = time.perf_counter()
    live: dict[int, SharedArray] = {}
    counts = {"chunks": 0, "silent": 0}
    kept: list[tuple[int, float, str]] = []
    stitcher = Stitcher(output, out_rate, in_rate, opts.crossfade_ms, channels=channels,
                        ceiling_db=opts.peak_ceiling_db)  # fmt: skip
    try:
        with stitcher:
            items = _items(input_path, opts, channels == 1, live, counts, info.frames)
            for outcome in pool.imap(ChunkTask(proc, out_rate), items, total=None):
                item: ChunkItem = outcome.item
                result = outcome.result
                if isinstance(result, Ok) and isinstance(result.value, ChunkResult):
                    samples, pad_left = result.value.audio.take(), result.value.pad_left
                else:
                    reason = str(result)
                    if opts.strict:
                        raise errors.ProcessingError(
                            f"{input_path}: chunk {item.index} at {item.start / in_rate:.1f}s failed twice: {reason}"
                        )
                    kept.append((item.index, item.start / in_rate, reason))
                    samples, pad_left = fit(np.array(item.audio.get()), in_rate, item, out_rate)
                live.pop(item.index).release()
                stitcher.add(item.start, item.end, samples, pad_left, item.forced_start, item.forced_end)
            stitcher.finish()
    finally:
        for shared in live.values():
            shared.release()
    limiter = stitcher.limiter
    return ConvertResult(
        input_path,
        output,
        info.duration,
        out_rate,
        counts["chunks"],
        counts["silent"],
        backend,
        plan.workers,
        time.perf_counter() - started,
        stitcher.joins,
        kept,
        channels=channels,
        input_channels=info.channels,
        limited_frames=limiter.limited_frames if limiter else 0,
        peak_reduction_db=limiter.max_reduction_db if limiter else 0.0,
    )


def convert(
    inputs: list[Path], output: Path, processor: Processor | str, opts: ConvertOptions | None = None
) -> list[ConvertResult]:
    """Each input to its own output (``output`` a file for one input, a folder for several).

    Every output is decided and checked before the first conversion (see :func:`plan_outputs`).
    """
    opts = opts or ConvertOptions()
    opts.validate()
    pairs = plan_outputs([Path(p) for p in inputs], Path(output))
    proc = make_processor(processor, {}) if isinstance(processor, str) else processor
    return [convert_file(source, target, proc, opts) for source, target in pairs]
