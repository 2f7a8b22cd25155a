"""``synth``: long texts (books, articles) spoken by Piper voices in parallel, in order, resumable."""

from voxmill.synth.notes import Loudness, NoteCode, SynthNote
from voxmill.synth.run import AudioChunk, SynthOptions, SynthResult, synthesize, synthesize_file
from voxmill.synth.voice import VoiceInfo, resolve_voice

__all__ = [
    "AudioChunk",
    "Loudness",
    "NoteCode",
    "SynthNote",
    "SynthOptions",
    "SynthResult",
    "VoiceInfo",
    "resolve_voice",
    "synthesize",
    "synthesize_file",
]
