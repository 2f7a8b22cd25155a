"""Piper (VITS) training facts that decide whether a dataset can train."""

from __future__ import annotations

__all__ = ["PIPER_SEGMENT_SAMPLES", "piper_min_seconds"]

# Piper (VITS) trains on random windows of segment_size = 8192 samples cut from each clip; a clip
# shorter than one window makes rand_slice_segments index before the start and the run crash days
# in. So a clip must keep at least 8192 samples at the output rate after trimming.
PIPER_SEGMENT_SAMPLES = 8192


def piper_min_seconds(sample_rate: int) -> float:
    return PIPER_SEGMENT_SAMPLES / sample_rate
