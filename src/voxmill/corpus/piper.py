"""Piper (VITS) training facts that decide whether a dataset can train."""

from __future__ import annotations

__all__ = [
    "DEFAULT_LENGTH_SCALE",
    "DEFAULT_NOISE_SCALE",
    "DEFAULT_NOISE_W",
    "PIPER_METADATA",
    "PIPER_NUM_SYMBOLS",
    "PIPER_SEGMENT_SAMPLES",
    "PIPER_VALIDATION_METADATA",
    "piper_min_seconds",
]

# Piper (VITS) trains on random windows of segment_size = 8192 samples cut from each clip; a clip
# shorter than one window makes rand_slice_segments index before the start and the run crash days
# in. So a clip must keep at least 8192 samples at the output rate after trimming.
PIPER_SEGMENT_SAMPLES = 8192

# The size of the phoneme embedding. piper's trainer (VitsModel, VitsDataModule --data.num_symbols)
# defaults to 256 and every published Piper checkpoint has 256 rows, whatever the phoneme map uses
# (espeak's default map reaches id 165): a config with fewer could neither fine-tune one of them nor
# agree with a checkpoint trained the normal way.
PIPER_NUM_SYMBOLS = 256

# A Piper training folder: the training rows, and the validation rows voxmill's trainer validates on.
PIPER_METADATA = "metadata.csv"
PIPER_VALIDATION_METADATA = "metadata_val.csv"

# Piper's own inference defaults (piper.config): what a voice's ``inference`` block means when it leaves
# a scale out, and what a dataset's config.json starts a trained voice with.
DEFAULT_LENGTH_SCALE = 1.0
DEFAULT_NOISE_SCALE = 0.667
DEFAULT_NOISE_W = 0.8


def piper_min_seconds(sample_rate: int) -> float:
    return PIPER_SEGMENT_SAMPLES / sample_rate
