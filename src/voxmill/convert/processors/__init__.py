"""Chunk processors for ``voxmill convert``: pitch (WORLD), gender (Praat), loudness, revoice (ASR + Piper)."""

from voxmill.convert.processors.base import BUILTIN, ChunkAudio, Processor, make_processor, processor_class

__all__ = ["BUILTIN", "ChunkAudio", "Processor", "make_processor", "processor_class"]
