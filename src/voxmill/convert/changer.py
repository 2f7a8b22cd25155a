"""``VoiceChanger``: the one-call interface voice-changer scripts expect, on top of ``convert_file``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voxmill.audio.slicing import SliceOptions
from voxmill.convert.options import ConvertOptions
from voxmill.convert.processors.base import make_processor
from voxmill.convert.result import ConvertedFile
from voxmill.convert.run import convert_file
from voxmill.engine import RunOptions

__all__ = ["VoiceChanger"]


class VoiceChanger:
    """``VoiceChanger(enable_parallel=True, chunk_duration_minutes=0.5, max_workers=None)``.

    ``process_file(input_file, output_file, method="pitch", voice_model=None, **options)`` runs the
    processor ``method`` (pitch, gender, loudness, revoice, or module:Class) with ``options`` (its
    fields, e.g. ``semitones=4``); ``voice_model`` is the Piper voice for ``revoice``.
    """

    def __init__(
        self, enable_parallel: bool = True, chunk_duration_minutes: float = 0.5, max_workers: int | None = None
    ) -> None:
        # No cut at a pause before half a chunk: short chunks still find pauses to end at.
        seconds = chunk_duration_minutes * 60
        self.options = ConvertOptions(
            slicing=SliceOptions(max_seconds=seconds, min_seconds=min(SliceOptions.min_seconds, seconds / 2)),
            run=RunOptions(
                workers=max_workers if max_workers else "auto",
                backend="auto" if enable_parallel else "serial",
                progress=False,
            ),
        )
        self.results: list[ConvertedFile] = []

    def process_file(
        self,
        input_file: str | Path,
        output_file: str | Path,
        method: str = "pitch",
        voice_model: str | None = None,
        **options: Any,
    ) -> ConvertedFile:
        if voice_model is not None:
            options["voice"] = voice_model
        result = convert_file(input_file, output_file, make_processor(method, options), self.options)
        self.results.append(result)
        return result

    def cleanup(self) -> None:
        """Forget past results. Workers and shared memory are released after every file already."""
        self.results.clear()
