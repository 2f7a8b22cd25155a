"""``segment``: long recordings (audiobooks, podcasts, lectures) cut into text-aligned training clips.

``voxmill.segment.run(SegmentOptions) -> SegmentResult`` is the feature; ``voxmill segment`` only builds
the options. Cut points from Silero VAD (:mod:`~voxmill.segment.cuts`), text from faster-whisper in
the engine's workers (:mod:`~voxmill.segment.task`), aligned to the book when one is given
(:mod:`~voxmill.segment.align`), written by the dataset writers prepare uses.
"""

from voxmill.segment.options import SegmentOptions
from voxmill.segment.run import SegmentClip, SegmentResult, run

__all__ = ["SegmentClip", "SegmentOptions", "SegmentResult", "run"]
