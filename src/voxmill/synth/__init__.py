"""``synth``: long texts (books, articles) spoken by Piper voices in parallel, in order, resumable.

``run(SynthOptions) -> SynthResult`` writes the output; ``stream(SynthOptions)`` yields the speech
piece by piece; ``speak_text`` is the speech of one piece (what each worker runs), for callers that
schedule pieces themselves (the server).
"""

from voxmill.synth.notes import Loudness, NoteCode, SynthNote
from voxmill.synth.options import SynthOptions
from voxmill.synth.result import SynthResult
from voxmill.synth.runner import run, stream
from voxmill.synth.speak import AudioChunk
from voxmill.synth.task import speak_text

__all__ = ["AudioChunk", "Loudness", "NoteCode", "SynthNote", "SynthOptions", "SynthResult", "run", "speak_text",
           "stream"]  # fmt: skip
