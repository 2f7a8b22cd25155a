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
from voxmill.convert.processors.base import Processor, make_processor
from voxmill.convert.task import ChunkItem, ChunkResult, ChunkTask, fit
from voxmill.engine import Ok, Pool, SharedArray, share

__all__ = ["ConvertOptions", "ConvertResult", "convert", "convert_file", "output_path"]

BACKENDS = ("auto", "process", "thread", "ray")
WRITABLE = (".wav", ".flac", ".ogg", ".mp3")
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


@dataclass
class ConvertResult:
    """What one conversion did. ``kept_original``: chunks the processor failed on twice (index, second, reason)."""

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.input),
            "output": str(self.output),
            "seconds": round(self.seconds, 3),
            "sample_rate": self.sample_rate,
            "chunks": self.chunks,
            "silent_chunks": self.silent_chunks,
            "backend": self.backend,
            "workers": self.workers,
            "wall_seconds": round(self.wall_seconds, 3),
            "x_realtime": round(self.seconds / self.wall_seconds, 2) if self.wall_seconds else None,
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


def output_path(input_path: Path, output: Path, several: bool) -> Path:
    """The file for ``input_path``: ``output`` itself, or inside it when it is a folder (or inputs are several)."""
    if several or output.is_dir() or not output.suffix:
        suffix = input_path.suffix.lower() if input_path.suffix.lower() in WRITABLE else ".wav"
        return output / f"{input_path.stem}{suffix}"
    if output.suffix.lower() not in WRITABLE:
        raise errors.ConfigError(f"{output}: output format {output.suffix} not supported; use {', '.join(WRITABLE)}")
    return output


def _items(
    path: Path, opts: ConvertOptions, live: dict[int, SharedArray], counts: dict[str, int], total: int
) -> Iterator[ChunkItem]:
    for chunk in slice_blocks(blocks(path, seconds=BLOCK_SECONDS, mono=True), opts.slicing, total):
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

    Raises AudioDecodeError for unreadable input, ConfigError for bad options, and ProcessingError
    with ``strict`` when a chunk failed twice (otherwise that chunk keeps its original audio).
    """
    opts = opts or ConvertOptions()
    input_path, output = Path(input_path), Path(output)
    proc = make_processor(processor, {}) if isinstance(processor, str) else processor
    opts.slicing.validate()
    backend = _backend(opts, proc)
    info = probe(input_path)
    in_rate = info.sample_rate
    out_rate = opts.sample_rate or in_rate
    if out_rate <= 0:
        raise errors.ConfigError(f"--sample-rate {out_rate}: must be > 0")
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
    try:
        with Stitcher(output, out_rate, in_rate, opts.crossfade_ms) as stitcher:
            items = _items(input_path, opts, live, counts, info.frames)
            outcomes = pool.imap(ChunkTask(proc, out_rate), items, total=None)
            for outcome in outcomes:
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
    )


def convert(
    inputs: list[Path], output: Path, processor: Processor | str, opts: ConvertOptions | None = None
) -> list[ConvertResult]:
    """Each input to its own output (``output`` a file for one input, a folder for several)."""
    several = len(inputs) > 1
    if several and output.exists() and not output.is_dir():
        raise errors.ConfigError(f"{output}: several inputs need an output folder")
    proc = make_processor(processor, {}) if isinstance(processor, str) else processor
    return [convert_file(path, output_path(path, output, several), proc, opts) for path in inputs]
