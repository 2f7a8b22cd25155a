"""``run(opts)``: long recordings through a processor in parallel chunks, stitched back seamlessly.

Data flow: blocks (streamed decode) -> chunks cut in pauses (audio/slicing) -> shared memory ->
engine workers (processor) -> ordered results -> stitcher (absolute offsets, crossfades) -> the
output file, encoded as chunks arrive. Memory is the engine's window of chunks, never the file.
Each finished chunk is also kept (journal + part file) until its output is written, for ``resume``.

Before any work, once per run, in this process: the options are checked, every output is decided
(:func:`plan_outputs`), the processor's models are resolved (from ``voices_dir``) and its extras
checked (``preflight``), and Silero is leased for ``--vad`` cut points. Then each input is converted;
one that fails (unreadable, its output held by another run, a chunk failed with ``strict``) is a
failed :class:`FileResult` and the next input is converted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxmill import errors
from voxmill.audio import blocks, probe
from voxmill.audio.slicing import slice_blocks
from voxmill.audio.stitch import Stitcher
from voxmill.audio.types import SourceInfo
from voxmill.convert.options import ConvertOptions
from voxmill.convert.outputs import check_channels, output_path, plan_outputs
from voxmill.convert.processors.base import Processor, make_processor
from voxmill.convert.result import ConvertedFile, ConvertResult, FileResult, KeptChunk
from voxmill.convert.resume import ChunkJournal, fingerprint
from voxmill.convert.task import ChunkItem, ChunkResult, ChunkTask, fit
from voxmill.engine import Failed, Ok, Pool, SharedArray, share
from voxmill.engine.outputs import OutputFile

if TYPE_CHECKING:
    from voxmill.audio.vad import SpeechDetector

__all__ = ["ConvertOptions", "ConvertResult", "convert_file", "output_path", "plan_outputs", "run"]

BLOCK_SECONDS = 30.0
# What fails one input and lets the others go on; anything else (a missing extra, a bug) ends the run.
PER_FILE_ERRORS = (errors.AudioError, errors.ConfigError, errors.ProcessingError)


@dataclass(frozen=True)
class _Setup:
    """What every file of a run shares: the options, the ready processor, the VAD for cut points."""

    opts: ConvertOptions
    processor: Processor
    detector: SpeechDetector | None


@contextlib.contextmanager
def _setup(opts: ConvertOptions, processor: Processor | str | None) -> Iterator[_Setup]:
    """Options checked, the processor made, its models resolved and its extras checked (once, here, in
    the parent), and Silero leased for ``--vad``: a usage error before any output exists."""
    opts.validate()
    if processor is None:
        raise errors.ConfigError("give a processor (--processor pitch, gender, loudness, revoice, module:Class)")
    proc = make_processor(processor, {}) if isinstance(processor, str) else processor
    from voxmill.models import ModelManager, Registry

    registry = Registry(opts.voices_dir)
    proc.resolve(registry)
    proc.preflight()
    if not opts.slicing.vad:
        yield _Setup(opts, proc, None)
        return
    manager = ModelManager(budget_bytes=opts.run.budget, registry=registry, device="cpu")
    try:
        with manager.lease(registry.resolve("silero-vad")) as detector:
            yield _Setup(opts, proc, detector)
    finally:
        manager.close()


def run(opts: ConvertOptions) -> ConvertResult:
    """Convert each of ``opts.inputs`` with ``opts.processor`` into ``opts.output`` (a file for one
    input, a folder for several); one :class:`FileResult` per input, in order.

    Raises, before anything is written: ConfigError for bad options, an unknown processor or voice,
    or outputs that collide (two inputs onto one file, an output that is an input); MissingExtraError
    when the processor needs an extra that is not installed. Per input (a failed FileResult, the run
    goes on): unreadable audio, an output another run holds or the input's channels its format cannot
    hold, and with ``strict`` a chunk that failed twice.
    """
    opts.validate()
    if opts.output is None:
        raise errors.ConfigError("give at least one input and the output (IN... OUT)")
    started = time.perf_counter()
    pairs = plan_outputs([Path(p) for p in opts.inputs], Path(opts.output))
    files: list[FileResult] = []
    with _setup(opts, opts.processor) as setup:
        for source, target in pairs:
            try:
                files.append(FileResult(source, target, converted=_convert(source, target, setup)))
            except PER_FILE_ERRORS as exc:
                files.append(FileResult(source, target, failed=Failed.from_exception(exc)))
    plans = [f.converted.plan for f in files if f.converted is not None and f.converted.plan is not None]
    return ConvertResult(files, plans[-1] if plans else None, time.perf_counter() - started)


def convert_file(
    input_path: str | Path, output: str | Path, processor: Processor | str, opts: ConvertOptions | None = None
) -> ConvertedFile:
    """Run ``processor`` (an instance or a name) over ``input_path`` and write ``output`` (atomically);
    ``opts``' inputs, output and processor are not used.

    The output keeps the input's channels (a processor that makes one channel mixes them, and the
    result says so) and never clips (``peak_ceiling_db``). The output is guarded: never the input,
    one run at a time, temp files of a killed run removed. Raises AudioDecodeError for unreadable
    input, ConfigError (OutputError) for bad options or an unusable output, and ProcessingError with
    ``strict`` when a chunk failed twice (otherwise that chunk keeps its original audio).
    """
    with _setup(opts or ConvertOptions(), processor) as setup:
        return _convert(Path(input_path), Path(output), setup)


def output_channels(info: SourceInfo, processor: Processor) -> int:
    """The input's channel count, or 1 for a processor that can only make one channel."""
    return 1 if processor.channels == "mono" else info.channels


def _convert(input_path: Path, output: Path, setup: _Setup) -> ConvertedFile:
    info = probe(input_path)
    channels = output_channels(info, setup.processor)
    check_channels(output, channels)
    with OutputFile(output, inputs=[input_path]) as guard:
        state = guard.open_state(keep=setup.opts.resume)
        out_rate = setup.opts.sample_rate or info.sample_rate
        identity = fingerprint(input_path, setup.opts.slicing, out_rate, channels, setup.processor)
        chunks = ChunkJournal(state, identity, out_rate, channels)
        try:
            result = _Conversion(input_path, output, setup, info, channels).stitch(chunks)
        except BaseException:
            finished = len(chunks.journal)
            chunks.close()
            if not finished:  # nothing a --resume could use: leave nothing beside the output
                guard.clear_state()
            raise
        chunks.close()
        guard.clear_state()  # written: nothing is left to resume
    return result


class _Conversion:
    """One input through the engine into the stitcher, counting what happened."""

    def __init__(self, input_path: Path, output: Path, setup: _Setup, info: SourceInfo, channels: int) -> None:
        self.input_path = input_path
        self.output = output
        self.setup = setup
        self.info = info
        self.channels = channels
        self.opts = setup.opts
        self.out_rate = self.opts.sample_rate or info.sample_rate
        self.live: dict[int, SharedArray] = {}
        self.counts = {"chunks": 0, "silent": 0, "resumed": 0}
        self.kept: list[KeptChunk] = []

    def _pool(self, processor: Processor) -> Pool:
        """The run's one Pool; ``auto`` is threads for a processor that frees the GIL, else processes."""
        run = self.opts.run
        backend = run.backend_or("thread" if processor.releases_gil else "process")
        run = dataclasses.replace(run, backend=backend, workers=1 if backend == "serial" else run.workers)
        # Chunks take seconds each: prefetch 1, so no chunk waits in a busy worker's pipe.
        pool = Pool.from_options(run, prefetch=1, description=f"converting {self.input_path.name}")
        # Chunks are streamed, so their count is unknown: "auto" workers are sized from the file's length
        # (no more workers than chunks), and the window is 4 per worker, so one slow chunk at the head of
        # the order does not idle the others.
        estimate = max(1, int(self.info.duration // self.opts.slicing.max_seconds) + 1)
        pool.workers = pool.plan_for(estimate).workers
        pool.window = self.opts.window or 4 * pool.workers
        return pool

    def _items(self) -> Iterator[ChunkItem]:
        source = blocks(self.input_path, seconds=BLOCK_SECONDS, mono=self.channels == 1)
        for chunk in slice_blocks(source, self.opts.slicing, self.info.frames, detector=self.setup.detector):
            shared = share(chunk.samples)
            self.live[chunk.index] = shared
            self.counts["chunks"] += 1
            self.counts["silent"] += chunk.silent
            yield ChunkItem(
                chunk.index, chunk.start, chunk.end, chunk.pad_left, chunk.pad_right, shared, chunk.sample_rate,
                chunk.silent, chunk.forced_start, chunk.forced_end,
            )  # fmt: skip

    def _samples(self, item: ChunkItem, result: Any) -> tuple[np.ndarray, int]:
        """The processed chunk, or (a chunk failed twice) its original audio: ProcessingError with strict."""
        if isinstance(result, Ok) and isinstance(result.value, ChunkResult):
            return result.value.audio.take(), result.value.pad_left
        in_rate = self.info.sample_rate
        failed = result if isinstance(result, Failed) else Failed("Dropped", str(result))
        if self.opts.strict:
            raise errors.ProcessingError(
                f"{self.input_path}: chunk {item.index} at {item.start / in_rate:.1f}s failed twice: {failed} "
                "(the chunks finished are kept: --resume goes on from them)"
            )
        self.kept.append(KeptChunk(item.index, item.start / in_rate, failed.code, str(failed)))
        return fit(np.array(item.audio.get()), in_rate, item, self.out_rate)

    def stitch(self, chunks: ChunkJournal) -> ConvertedFile:
        opts, processor = self.opts, self.setup.processor
        pool = self._pool(processor)
        started = time.perf_counter()
        fade = opts.slicing.checked().crossfade_ms(opts.crossfade_ms)
        stitcher = Stitcher(self.output, self.out_rate, self.info.sample_rate, fade, channels=self.channels,
                            ceiling_db=opts.peak_ceiling_db)  # fmt: skip
        task = ChunkTask(processor, self.out_rate)
        try:
            with stitcher:
                outcomes = pool.imap(task, self._items(), journal=chunks.journal, key=chunks.key,
                                     timeout=opts.run.timeout)  # fmt: skip
                for outcome in outcomes:
                    item: ChunkItem = outcome.item
                    self.counts["resumed"] += outcome.resumed
                    samples, pad_left = self._samples(item, outcome.result)
                    self.live.pop(item.index).release()
                    stitcher.add(item.start, item.end, samples, pad_left, item.forced_start, item.forced_end)
                stitcher.finish()
        finally:
            for shared in self.live.values():
                shared.release()
        limiter = stitcher.limiter
        return ConvertedFile(
            input=self.input_path,
            output=self.output,
            seconds=self.info.duration,
            sample_rate=self.out_rate,
            chunks=self.counts["chunks"],
            silent_chunks=self.counts["silent"],
            plan=pool.plan,
            wall_seconds=time.perf_counter() - started,
            joins=stitcher.joins,
            kept_original=self.kept,
            channels=self.channels,
            input_channels=self.info.channels,
            limited_frames=limiter.limited_frames if limiter else 0,
            peak_reduction_db=limiter.max_reduction_db if limiter else 0.0,
            resumed_chunks=self.counts["resumed"],
        )
