"""Text leaves: normalization (and later splitting and phonemes). Imports nothing else of voxmill."""

from voxmill.text.normalize import clean_text

__all__ = ["clean_text"]
