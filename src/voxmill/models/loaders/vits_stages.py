"""The decoder of a split VITS voice (:mod:`.vits`) cut in two stages, each windowed with its own context.

Why: a window of the decoder is decoded with the decoder's receptive field on each side (~13 latent
frames for Piper's voices), and that context is computed again by the next window: at 128-frame windows,
~20% more decoder work, 8% of a voice's whole time. Almost all of that reach comes from the decoder's
first, low-rate stage (``conv_pre`` and the first upsampling block, at 1x and 8x the frame rate), while
almost all of its work and memory is in the later, high-rate stages, whose own reach is about one frame.
Cut after the first upsampling block, the high-rate part runs in the same 128-frame windows with ~2 frames
of context instead of 13, and the cheap low-rate part runs in windows 8x as long (its tensors are 8x
smaller per frame), so memory stays bounded as before. Measured on the bundled voice (the 57 sentences
of tests/data/mill.md, one thread): 92.4 ms of CPU per second of speech with the decoder windowed in
one part, 85.2 in two stages, 85.0 decoding whole sentences in one pass (unbounded memory); the same
samples (max difference 2.4e-7, float rounding). The Wyoming server's peak RSS under load: unchanged.

No library runs an ONNX graph piecewise with measured context, hence by hand; the cut itself is
:func:`~voxmill.models.loaders.vits_graph.cut_decoder`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["TwoStages", "reach"]

# The low-rate part's windows are this many times the high-rate part's (its tensors per frame are ~8x
# smaller: 256 channels at 8x the frame rate against 64-128 channels at 64-256x).
LOW_WINDOW_FACTOR = 8
# Extra frames beyond the low-rate part's measured reach, against rounding in the probe.
MARGIN = 2


def reach(run: Any, channels: int, length: int) -> tuple[int, int]:
    """(output steps per input step, input steps of context a window needs on each side) of a
    convolutional part: ``run(x)`` on a random (1, channels, length) input, then with its middle step
    nudged; how far the output changes, in input steps (rounded up)."""
    x = np.random.default_rng(0).standard_normal((1, channels, length)).astype(np.float32)
    base = np.asarray(run(x))
    base = base.reshape(-1, base.shape[-1])
    hop = base.shape[-1] // length
    x[:, :, length // 2] += 1.0
    nudged = np.asarray(run(x))
    changed = np.flatnonzero(np.any(nudged.reshape(-1, nudged.shape[-1]) != base, axis=0))
    if changed.size == 0:
        return hop, length
    middle = length // 2 * hop
    return hop, math.ceil(max(middle - changed[0], changed[-1] - middle - hop) / hop)


class TwoStages:
    """Decodes a latent through the low part (long windows) and the high part (``window``-frame windows),
    each with the context it measured; keeps only the low part's output the next windows need."""

    def __init__(
        self, low: Any, high: Any, latent: str, channels: int, window: int, measured: Sequence[int] | None = None
    ) -> None:
        """``measured``: :attr:`measured` of an earlier TwoStages of the same parts (kept in the split's
        cache), so the parts need not be probed again: the probes took 0.08 of a voice's 0.27-s load."""
        self.low, self.high, self.latent, self.window = low, high, latent, window
        self.cut = high.get_inputs()[0].name
        self.others = {i.name: _zeros(i) for i in low.get_inputs() if i.name != latent}
        if measured is not None:
            self.low_hop, low_reach, self.high_hop, high_reach = measured
        else:
            self.low_hop, low_reach = reach(lambda x: self._low({}, x), channels, 64)
            middle = self._low({}, np.zeros((1, channels, 1), np.float32)).shape[1]
            self.high_hop, high_reach = reach(self._high, middle, 64 * self.low_hop)
        self.measured = (self.low_hop, low_reach, self.high_hop, high_reach)
        self.low_context = low_reach + MARGIN
        # In latent frames, its reach rounded up and no margin: each frame of context costs 2% of the
        # high-rate part's work at 96-frame windows. The probe is exact here (a nudge reaches every output
        # whose receptive field holds it: the part has no ReLU that could zero a path), and rounding up to
        # whole frames leaves up to 7 of its steps to spare. At Piper's reach of 8 steps (one frame) the
        # samples are the same as with a frame more, bit for bit (measured on 150 s of tests/data/mill.md);
        # a frame less is audibly wrong (0.16), which the split's check (vits._verify) would catch.
        self.high_context = math.ceil(high_reach / self.low_hop)

    @property
    def hop(self) -> int:
        return self.low_hop * self.high_hop

    @property
    def context(self) -> int:
        """Latent frames of context a window of the whole decoder needs on each side."""
        return self.low_context + self.high_context

    def _low(self, found: dict[str, np.ndarray], latent: np.ndarray) -> np.ndarray:
        feeds = {**self.others, **{k: v for k, v in found.items() if k in self.others}, self.latent: latent}
        return np.asarray(self.low.run(None, feeds)[0])

    def _high(self, middle: np.ndarray) -> np.ndarray:
        return np.asarray(self.high.run(None, {self.cut: middle})[0])

    def decode(self, found: dict[str, np.ndarray], latent: np.ndarray) -> np.ndarray:
        """The audio of ``latent`` (1, channels, frames), as one pass of the whole decoder would give it."""
        frames = latent.shape[-1]
        block = self.window * LOW_WINDOW_FACTOR
        have = (0, 0)  # frames of the low part's output held in ``middle``
        middle = np.zeros((1, 0, 0), np.float32)
        parts = []
        for start in range(0, frames, self.window):
            end = min(start + self.window, frames)
            first, last = max(0, start - self.high_context), min(frames, end + self.high_context)
            if last > have[1]:  # the next block of the low part, and what is still needed of the last one
                upto = min(frames, max(last, have[1] + block))
                low, high = max(0, have[1] - self.low_context), min(frames, upto + self.low_context)
                out = self._low(found, np.ascontiguousarray(latent[..., low:high]))
                out = out[..., (have[1] - low) * self.low_hop : (upto - low) * self.low_hop]
                keep = middle[..., max(0, first - have[0]) * self.low_hop :]
                middle = np.concatenate([keep, out], axis=-1) if keep.size else out
                have = (max(first, have[0]), upto)
            window = middle[..., (first - have[0]) * self.low_hop : (last - have[0]) * self.low_hop]
            audio = self._high(np.ascontiguousarray(window)).reshape(-1)
            offset = (start - first) * self.hop
            parts.append(audio[offset : offset + (end - start) * self.hop])
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _zeros(arg: Any) -> np.ndarray:
    return np.zeros([d if isinstance(d, int) else 1 for d in arg.shape], np.float32)
