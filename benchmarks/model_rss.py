"""Leases under a one-model budget while a thread samples RSS (run by model_manager.py and the tests).

usage: python model_rss.py BUDGET_BYTES   -> prints JSON {baseline, peak, budget, evictions}
"""

from __future__ import annotations

import json
import sys
import threading
import time

import faster_whisper  # noqa: F401 - libraries are imported before the baseline: they are not models
import numpy as np
import onnxruntime  # noqa: F401
import piper  # noqa: F401
import psutil

from voxmill.models import ModelManager


def _speak(manager: ModelManager) -> np.ndarray:
    with manager.lease("piper:en_US-joe-medium") as voice:
        return np.concatenate([c.audio_float_array for c in voice.synthesize("Budgets keep memory in check.")])


def _transcribe(manager: ModelManager, speech: np.ndarray) -> str:
    with manager.lease("whisper:tiny.en") as whisper:
        audio16k = speech[::2][: 16000 * 3]  # a rough 11 kHz view is enough to exercise the model
        return " ".join(segment.text for segment in whisper.transcribe(audio16k, beam_size=1)[0])


def main(budget: int) -> None:
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    manager = ModelManager(budget_bytes=budget, threads=1)
    evictions: list[str] = []
    manager.on("evict", lambda event, info: evictions.append(info["name"]))
    # Each model is used inside its lease only: a reference kept after the lease would keep an
    # evicted model alive, and no manager can free memory its caller still holds.
    for _ in range(3):
        speech = _speak(manager)
        _transcribe(manager, speech)
        with manager.lease("silero-vad"):
            pass
    done.set()
    sampler.join()
    print(json.dumps({"baseline": baseline, "peak": peak, "budget": budget, "evictions": evictions}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
