"""``ConvertOptions``: what ``voxmill.convert.run`` converts (inputs, output, processor) and how."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from voxmill import errors
from voxmill.audio.slicing import SliceOptions
from voxmill.audio.types import rate_problem
from voxmill.convert.processors.base import Processor
from voxmill.engine import BACKENDS, RunOptions, check_number

__all__ = ["ConvertOptions"]


@dataclass
class ConvertOptions:
    """What to convert and how; see ``voxmill convert --help``.

    ``inputs``, ``output`` and ``processor`` are what :func:`voxmill.convert.run` converts;
    :func:`~voxmill.convert.convert_file` takes them as arguments and reads only the rest.
    """

    inputs: list[Path] = field(default_factory=list)
    """Recordings (wav/flac/mp3/ogg/m4a/...), each converted to its own output."""
    output: Path | None = None
    """A file (wav/flac/ogg/mp3 by suffix) for one input; a folder for several, or when it is one."""
    processor: Processor | str | None = None
    """A Processor instance, or a name (pitch, gender, loudness, revoice, a plug-in, module:Class)."""
    slicing: SliceOptions = field(default_factory=SliceOptions)
    """Where chunks are cut (pauses, maximum length, context padding)."""
    crossfade_ms: float = 10.0
    """Equal-power crossfade where a cut was forced inside speech (at most the context both sides had)."""
    sample_rate: int | None = None
    """Output rate; None keeps the input's."""
    run: RunOptions = field(default_factory=RunOptions)
    """Workers, backend, threads, cluster, model budget, progress. Backend ``auto``: threads when the
    processor runs without the GIL, else processes; ``serial``: one chunk after another, here."""
    window: int | None = None
    """Chunks in flight at most (None: 4 per worker): the memory bound."""
    strict: bool = False
    """A chunk that failed twice fails its file (no output) instead of keeping its original audio."""
    peak_ceiling_db: float | None = -1.0
    """No output sample goes above this (dBFS): a look-ahead limiter catches a processor's overshoot,
    which a file would otherwise clip. None writes what the processor made (clipped at full scale)."""
    resume: bool = False
    """Keep the chunks an earlier run of the same input, output and options finished (killed or
    failed mid-file): only the others are processed, and the output is the same bytes."""
    voices_dir: Path | None = None
    """Where Piper voices are looked up besides the installed ones (Settings' ``voices_dir``)."""

    def validate(self) -> None:
        """Raise ConfigError naming the first bad option, before any work."""
        self.run.validate(BACKENDS)
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
