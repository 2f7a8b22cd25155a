"""``VoiceChanger``: the one-call interface voice-changer scripts expect, on top of ``convert_file``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from voxmill.audio.slicing import SliceOptions
from voxmill.convert.processors.base import make_processor
from voxmill.convert.run import ConvertOptions, ConvertResult, convert_file

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
        self.options = ConvertOptions(
            slicing=SliceOptions(
                max_seconds=chunk_duration_minutes * 60, min_seconds=min(5.0, chunk_duration_minutes * 30)
            ),
            parallel=enable_parallel,
            workers=max_workers if max_workers else "auto",
            progress=False,
        )
        self.results: list[ConvertResult] = []

    def process_file(
        self,
        input_file: str | Path,
        output_file: str | Path,
        method: str = "pitch",
        voice_model: str | None = None,
        **options: Any,
    ) -> ConvertResult:
        if voice_model is not None:
            options["voice"] = voice_model
        result = convert_file(input_file, output_file, make_processor(method, options), self.options)
        self.results.append(result)
        return result

    def cleanup(self) -> None:
        """Forget past results. Workers and shared memory are released after every file already."""
        self.results.clear()
