"""``synth``: long texts (books, articles) spoken by Piper voices in parallel, in order, resumable.

``run(SynthOptions) -> SynthResult`` writes the output; ``stream(SynthOptions)`` yields the speech
piece by piece.
"""

from voxmill.synth.notes import Loudness, NoteCode, SynthNote
from voxmill.synth.options import SynthOptions
from voxmill.synth.result import SynthResult
from voxmill.synth.runner import run, stream
from voxmill.synth.speak import AudioChunk

__all__ = ["AudioChunk", "Loudness", "NoteCode", "SynthNote", "SynthOptions", "SynthResult", "run", "stream"]
