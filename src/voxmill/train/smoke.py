"""Does an exported voice speak? One fixed sentence through voxmill's own synthesis, then ``check --model``.

The bounds are generous on purpose: a voice after a few steps babbles, and that is fine. What this
catches is an export that is broken: no audio, silence, NaN, or minutes of output for one sentence
(a duration predictor gone wild). The voice is loaded exactly as ``voxmill synth`` loads it (the
registry parses its ``.onnx.json``, the model manager loads it) and speaks through
``voxmill.models.speech.speak_text``, the function synth's workers and the server call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxmill import errors
from voxmill.check.checks.voices import SMOKE_TEXT
from voxmill.check.findings import Finding, Severity

if TYPE_CHECKING:
    from voxmill.engine import RunOptions

__all__ = ["SMOKE_TEXT", "SmokeCode", "SmokeResult", "judge", "smoke_test"]

# Below -60 dBFS peak a voice is silent, whatever it was trained on.
SILENT_PEAK = 1e-3
# Seconds of audio per character of text. Read speech is ~0.07 s/char; an untrained model's
# durations are ~1-2 frames per phoneme (~0.03-0.06 s/char). Outside [0.01, 1.0] the export is broken.
MIN_SECONDS_PER_CHAR = 0.01
MAX_SECONDS_PER_CHAR = 1.0


class SmokeCode(StrEnum):
    """Why a voice failed its smoke test (``ok`` when it passed)."""

    OK = "ok"
    LOAD = "load"  # the voice cannot be loaded (config or model)
    SYNTH = "synth"  # loading worked, speaking raised
    EMPTY = "empty"  # no samples at all
    NON_FINITE = "non_finite"  # NaN or inf samples
    SILENT = "silent"  # samples, all near zero
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    CHECK = "check"  # ``check --model`` has a FAIL


@dataclass(frozen=True)
class SmokeResult:
    """What the voice said about itself: ``seconds`` of audio, its ``peak`` and ``rms`` (linear, 0..1)."""

    ok: bool
    code: SmokeCode
    message: str
    seconds: float = 0.0
    peak: float = 0.0
    rms: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    """``check --model``'s findings (empty when the speech itself failed first)."""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "code": self.code.value, "message": self.message, "seconds": round(self.seconds, 3),
                "peak": round(self.peak, 5), "rms": round(self.rms, 5),
                "findings": [f.to_dict() for f in self.findings]}  # fmt: skip


def smoke_test(onnx: Path, *, text: str = SMOKE_TEXT, options: RunOptions | None = None) -> SmokeResult:
    """Speak ``text`` with the voice at ``onnx`` and run ``check --model`` on it.

    ``options``: the model budget and device (default: the automatic budget, any device). Never raises
    for a bad voice: the result says what is wrong.
    """
    onnx = Path(onnx)
    try:
        audio, rate = _speak(onnx, text, options)
    except (errors.ModelError, errors.ConfigError) as exc:
        return SmokeResult(False, SmokeCode.LOAD, f"{onnx.name}: {exc}")
    except Exception as exc:  # onnxruntime raises its own kinds for a graph that loads but cannot run
        return SmokeResult(False, SmokeCode.SYNTH, f"{onnx.name}: synthesis failed ({type(exc).__name__}: {exc})")
    result = judge(onnx.name, audio, rate, len(text))
    if not result.ok:
        return result
    from voxmill.check.checks import voices

    findings = voices.run([onnx], options)
    failed = [f for f in findings if f.severity is Severity.FAIL]
    if failed:
        message = f"{onnx.name}: check --model: {failed[0].id}: {failed[0].message}"
        return SmokeResult(False, SmokeCode.CHECK, message, result.seconds, result.peak, result.rms, findings)
    return SmokeResult(True, SmokeCode.OK, result.message, result.seconds, result.peak, result.rms, findings)


def _speak(onnx: Path, text: str, options: RunOptions | None) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    from voxmill.engine import RunOptions, usable_cores
    from voxmill.models import ModelManager, Registry
    from voxmill.models.speech import speak_text

    options = options or RunOptions()
    registry = Registry()
    spec = registry.resolve(onnx, kind="piper")  # a path: parsed and registered, no discovery
    manager = ModelManager(budget_bytes=options.budget, gpu_budget_bytes=options.gpu_budget, registry=registry,
                           device=options.device, threads=usable_cores())  # fmt: skip
    try:
        with manager.lease(spec) as voice:
            speaker = 0 if spec.speakers > 1 else None
            # normalize_audio=False, as synth speaks: Piper's normalization would hide a near-silent voice.
            config = SynthesisConfig(speaker_id=speaker, normalize_audio=False)
            return speak_text(voice, text, config), int(voice.config.sample_rate)
    finally:
        manager.close()


def judge(name: str, audio: np.ndarray, rate: int, chars: int) -> SmokeResult:
    """Whether ``audio`` (at ``rate``) is plausible speech of a ``chars``-character text from voice ``name``."""
    if audio.size == 0:
        return SmokeResult(False, SmokeCode.EMPTY, f"{name}: no audio for a {chars}-character sentence")
    seconds = audio.size / rate
    if not np.isfinite(audio).all():
        return SmokeResult(False, SmokeCode.NON_FINITE, f"{name}: NaN or infinite samples", seconds)
    peak = float(np.max(np.abs(audio)))
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    said = f"{name}: {seconds:.2f} s of audio for {chars} characters, peak {peak:.4f}, RMS {rms:.4f}"
    low, high = chars * MIN_SECONDS_PER_CHAR, chars * MAX_SECONDS_PER_CHAR
    if peak < SILENT_PEAK:
        return SmokeResult(False, SmokeCode.SILENT, f"{said}: silent", seconds, peak, rms)
    if seconds < low:
        return SmokeResult(False, SmokeCode.TOO_SHORT, f"{said}: shorter than {low:.2f} s", seconds, peak, rms)
    if seconds > high:
        return SmokeResult(False, SmokeCode.TOO_LONG, f"{said}: longer than {high:.0f} s", seconds, peak, rms)
    return SmokeResult(True, SmokeCode.OK, said, seconds, peak, rms)
