"""What a prepare run made of its corpus: :class:`PrepareStats`, written as ``OUT/stats.json``."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from voxmill.engine.report import ReasonGroup
from voxmill.prepare.steps import Clip

__all__ = ["PrepareStats"]


@dataclass(frozen=True)
class PrepareStats:
    """Counts, reasons and hours of one run. ``counts``: rows per status (ok, dropped, failed; a
    status with no rows is absent). ``reasons``: the dropped and failed rows grouped by code, most
    common first. ``clips``: rows ok before the speaker cap; ``speakers`` and the hours out count the
    clips kept after it. ``unknown_phonemes``: phonemes espeak produced that piper's default phoneme
    map lacks (training would drop them), most common first."""

    sources: list[str]
    rows: int
    counts: dict[str, int]
    reasons: list[ReasonGroup] = field(default_factory=list)
    speakers: int = 0
    avg_clips_per_speaker: float = 0.0
    hours_in: float = 0.0
    hours_out: float = 0.0
    hours_per_label: dict[str, float] = field(default_factory=dict)
    unknown_phonemes: dict[str, int] = field(default_factory=dict)
    phonemized: int = 0
    train_clips: int = 0
    validation_clips: int = 0

    @classmethod
    def of(
        cls,
        sources: list[str],
        rows: int,
        counts: dict[str, int],
        reasons: list[ReasonGroup],
        clips: list[Clip],
        kept: list[Clip],
        validation: int,
    ) -> PrepareStats:
        speakers = Counter(c.speaker or "" for c in kept)
        per_label: dict[str, float] = defaultdict(float)
        for clip in kept:
            for key, value in clip.labels.items():
                per_label[f"{key}={value}"] += clip.seconds_out / 3600
        return cls(
            sources=list(sources),
            rows=rows,
            counts=dict(counts),
            reasons=list(reasons),
            speakers=len(speakers),
            avg_clips_per_speaker=round(len(kept) / max(1, len(speakers)), 2),
            hours_in=round(sum(c.seconds_in for c in clips) / 3600, 4),
            hours_out=round(sum(c.seconds_out for c in kept) / 3600, 4),
            hours_per_label={k: round(v, 4) for k, v in sorted(per_label.items())},
            unknown_phonemes=dict(Counter(p for c in kept for p in c.unknown_phonemes).most_common()),
            phonemized=sum(1 for c in kept if c.phonemes is not None),
            train_clips=len(kept) - validation,
            validation_clips=validation,
        )

    @classmethod
    def from_dict(cls, data: Any) -> PrepareStats:
        """The stats :meth:`to_dict` wrote; ValueError for anything else (a damaged or foreign file)."""
        try:
            codes, examples = data["reason_codes"], data["reason_examples"]
            reasons = [
                ReasonGroup(status, str(codes[status][words]), int(n), tuple(map(str, examples[status][words])))
                for status, counts in data["reasons"].items()
                for words, n in counts.items()
            ]
            return cls(
                sources=[str(s) for s in data["sources"]],
                rows=int(data["rows"]),
                counts={str(k): int(v) for k, v in data["counts"].items()},
                reasons=reasons,
                speakers=int(data["speakers"]),
                avg_clips_per_speaker=float(data["avg_clips_per_speaker"]),
                hours_in=float(data["hours_in"]),
                hours_out=float(data["hours_out"]),
                hours_per_label={str(k): float(v) for k, v in data["hours_per_label"].items()},
                unknown_phonemes={str(k): int(v) for k, v in data["unknown_phonemes"].items()},
                phonemized=int(data["phonemized"]),
                train_clips=int(data["train_clips"]),
                validation_clips=int(data["validation_clips"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not prepare stats: {exc!r}") from None

    def top(self, status: str, count: int = 4) -> list[ReasonGroup]:
        """The ``count`` most common reasons of ``status`` (dropped or failed)."""
        return [g for g in self.reasons if g.status == status][:count]

    def to_dict(self) -> dict[str, Any]:
        """``stats.json``: reasons in words (``reasons``, with ``reason_examples``) and their codes."""
        reasons: dict[str, dict[str, int]] = defaultdict(dict)
        examples: dict[str, dict[str, list[str]]] = defaultdict(dict)
        codes: dict[str, dict[str, str]] = defaultdict(dict)
        for group in self.reasons:
            reasons[group.status][group.words] = group.count
            examples[group.status][group.words] = list(group.examples)
            codes[group.status][group.words] = group.code
        return {
            "sources": self.sources,
            "rows": self.rows,
            "counts": self.counts,
            "reasons": dict(reasons),
            "reason_examples": dict(examples),
            "reason_codes": dict(codes),
            "speakers": self.speakers,
            "avg_clips_per_speaker": self.avg_clips_per_speaker,
            "hours_in": self.hours_in,
            "hours_out": self.hours_out,
            "hours_per_label": self.hours_per_label,
            "unknown_phonemes": self.unknown_phonemes,
            "phonemized": self.phonemized,
            "train_clips": self.train_clips,
            "validation_clips": self.validation_clips,
        }
