"""Deterministic dataset shaping: a per-speaker cap and a speaker-aware validation split (prepare and
segment shape their clips alike)."""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Protocol, TypeVar


class _Clip(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def speaker(self) -> str | None: ...


Clip = TypeVar("Clip", bound=_Clip)

__all__ = ["cap_per_speaker", "split_validation"]


def _by_speaker(clips: list[Clip]) -> dict[str, list[Clip]]:
    groups: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        groups[clip.speaker or ""].append(clip)
    return groups


def cap_per_speaker(clips: list[Clip], cap: int | None, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Keep at most ``cap`` clips per speaker, chosen by a seeded shuffle; returns (kept, capped).

    Each speaker gets its own RNG seeded from (seed, speaker), so adding a speaker does not change
    which clips another speaker keeps; the kept clips stay in input order.
    """
    if cap is None:
        return clips, []
    chosen: set[str] = set()
    for speaker, group in _by_speaker(clips).items():
        ids = sorted(c.id for c in group)
        chosen.update(ids if len(ids) <= cap else random.Random(f"{seed}:{speaker}").sample(ids, cap))
    return [c for c in clips if c.id in chosen], [c for c in clips if c.id not in chosen]


def split_validation(
    clips: list[Clip], fraction: float | None, size: int | None, seed: int
) -> tuple[list[Clip], list[Clip]]:
    """(train, validation): every speaker contributes its share to validation and keeps >= 1 clip in train."""
    if not clips or (not fraction and not size):
        return clips, []
    share = fraction if fraction else min(1.0, (size or 0) / len(clips))
    val_ids: set[str] = set()
    for speaker, group in _by_speaker(clips).items():
        ids = sorted(c.id for c in group)
        take = min(len(ids) - 1, round(share * len(ids)))
        if take > 0:
            val_ids.update(random.Random(f"{seed}:val:{speaker}").sample(ids, take))
    return [c for c in clips if c.id not in val_ids], [c for c in clips if c.id in val_ids]
