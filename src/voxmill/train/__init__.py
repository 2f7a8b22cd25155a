"""``train``: Piper voices trained, fine-tuned, resumed and exported, with the readiness gate in front.

``voxmill.train.run(TrainOptions) -> TrainResult`` is the feature; ``voxmill train`` only builds the
options. Piper's own trainer runs in a child process (:mod:`voxmill.train.child`).
"""

from voxmill.errors import NotReady
from voxmill.train.options import QUALITIES, TrainOptions
from voxmill.train.run import TrainResult, VoiceExport, run
from voxmill.train.status import run_status

__all__ = ["QUALITIES", "NotReady", "TrainOptions", "TrainResult", "VoiceExport", "run", "run_status"]
