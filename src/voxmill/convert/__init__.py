"""``convert``: long recordings through a processor (voice change, re-voicing) in parallel chunks, stitched back.

``run(ConvertOptions) -> ConvertResult`` is the entry point (``voxmill.convert_audio``); ``convert_file``
converts one file and raises on failure; ``VoiceChanger`` is the one-call interface of voice-changer scripts.
"""

from voxmill.convert.changer import VoiceChanger
from voxmill.convert.options import ConvertOptions
from voxmill.convert.processors import ChunkAudio, Processor, make_processor, processor_class
from voxmill.convert.result import ConvertedFile, ConvertResult, FileResult, KeptChunk
from voxmill.convert.run import convert_file, run

__all__ = [
    "ChunkAudio",
    "ConvertOptions",
    "ConvertResult",
    "ConvertedFile",
    "FileResult",
    "KeptChunk",
    "Processor",
    "VoiceChanger",
    "convert_file",
    "make_processor",
    "processor_class",
    "run",
]
