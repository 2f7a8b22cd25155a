"""Where each input of ``convert`` is written, decided and checked for all inputs before any work.

Two inputs named alike (``a/take.wav`` and ``b/take.wav`` into one folder, or one file given twice)
would be written to one file, the second overwriting the first while both were reported as written:
such a run is refused up front, naming both. An output that is one of the inputs is refused too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from voxmill import errors
from voxmill.corpus.names import collision_key
from voxmill.engine.outputs import check_overlap

__all__ = ["WRITABLE", "check_channels", "output_path", "plan_outputs"]

WRITABLE = (".wav", ".flac", ".ogg", ".mp3")
# The most channels each writable format holds (libsndfile's limits); wav and ogg hold any count.
MAX_CHANNELS = {".mp3": 2, ".flac": 8}


def output_path(input_path: Path, output: Path, several: bool) -> Path:
    """The file for ``input_path``: ``output`` itself, or inside it when it is a folder (or inputs are several)."""
    if several or output.is_dir() or not output.suffix:
        suffix = input_path.suffix.lower() if input_path.suffix.lower() in WRITABLE else ".wav"
        return output / f"{input_path.stem}{suffix}"
    if output.suffix.lower() not in WRITABLE:
        raise errors.ConfigError(f"{output}: output format {output.suffix} not supported; use {', '.join(WRITABLE)}")
    return output


def plan_outputs(inputs: Sequence[Path], output: Path) -> list[tuple[Path, Path]]:
    """(input, output file) for each input, or ConfigError/OutputError before anything is written.

    Refused: several inputs and an output that is a file; two inputs whose outputs are one file (also
    where only case or Unicode form differs: one file on macOS and Windows); an output that is any
    of the inputs.
    """
    if not inputs:
        raise errors.ConfigError("give at least one input and the output (IN... OUT)")
    several = len(inputs) > 1
    if several and output.exists() and not output.is_dir():
        raise errors.ConfigError(f"{output}: several inputs need an output folder")
    pairs = [(path, output_path(path, output, several)) for path in inputs]
    first: dict[str, Path] = {}
    for source, target in pairs:
        key = collision_key(str(target))
        if key in first:
            raise errors.ConfigError(
                f"{first[key]} and {source} would both be written to {target}; "
                "rename one, or convert them into separate folders"
            )
        first[key] = source
    for _, target in pairs:
        check_overlap(inputs, target, output_is_folder=False)
    return pairs


def check_channels(output: Path, channels: int) -> None:
    """ConfigError when ``output``'s format cannot hold ``channels`` channels (mp3: 2, flac: 8)."""
    limit = MAX_CHANNELS.get(output.suffix.lower())
    if limit is not None and channels > limit:
        raise errors.ConfigError(
            f"{output}: {output.suffix.lower()[1:]} holds at most {limit} channels and the input has {channels}; "
            "write .wav or .ogg to keep them all"
        )
