"""``synth``: long texts (books, articles) spoken by Piper voices in parallel, in order, resumable."""

from voxmill.synth.run import AudioChunk, SynthOptions, SynthResult, synthesize, synthesize_file
from voxmill.synth.voice import VoiceInfo, resolve_voice

__all__ = ["AudioChunk", "SynthOptions", "SynthResult", "VoiceInfo", "resolve_voice", "synthesize", "synthesize_file"]
