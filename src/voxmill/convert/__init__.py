"""``convert``: long recordings through a processor (voice change, re-voicing) in parallel chunks, stitched back."""

from voxmill.convert.changer import VoiceChanger
from voxmill.convert.processors import ChunkAudio, Processor, make_processor, processor_class
from voxmill.convert.run import ConvertOptions, ConvertResult, convert, convert_file

__all__ = [
    "ChunkAudio",
    "ConvertOptions",
    "ConvertResult",
    "Processor",
    "VoiceChanger",
    "convert",
    "convert_file",
    "make_processor",
    "processor_class",
]
