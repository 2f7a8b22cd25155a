"""voxmill's monotonic alignment gives the path a brute-force search finds, and piper's trainer imports it."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from voxmill.train import align


def brute_force(values: np.ndarray, t_y: int, t_x: int) -> np.ndarray:
    """Every monotonic path (each frame one token; start at 0, end at t_x - 1, +0 or +1 per frame): the best."""
    best, best_path = -np.inf, None
    for steps in itertools.product((0, 1), repeat=t_y - 1):
        if sum(steps) != t_x - 1:
            continue
        tokens = np.concatenate([[0], np.cumsum(steps)]).astype(int)
        score = float(sum(values[y, x] for y, x in enumerate(tokens)))
        if score > best:
            best, best_path = score, tokens
    path = np.zeros(values.shape, dtype=np.int32)
    assert best_path is not None
    path[np.arange(t_y), best_path] = 1
    return path


@pytest.mark.parametrize("seed", range(40))
def test_same_path_as_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t_y_max, t_x_max = 9, 5
    batch = 3
    values = rng.normal(size=(batch, t_y_max, t_x_max)).astype(np.float32)
    t_xs = rng.integers(1, t_x_max + 1, size=batch).astype(np.int32)
    t_ys = np.array([rng.integers(t_x, t_y_max + 1) for t_x in t_xs], dtype=np.int32)
    paths = align.maximum_path(values, t_ys, t_xs)
    for b in range(batch):
        expected = np.zeros((t_y_max, t_x_max), dtype=np.int32)
        expected[: t_ys[b], : t_xs[b]] = brute_force(values[b, : t_ys[b], : t_xs[b]], int(t_ys[b]), int(t_xs[b]))
        np.testing.assert_array_equal(paths[b], expected)
    assert values.dtype == np.float32  # the input is left as it was (maximum_path works on a copy)


def test_degenerate_shapes() -> None:
    values = np.zeros((1, 4, 4), dtype=np.float32)
    # One token: every frame on it. As many frames as tokens: the diagonal.
    one = align.maximum_path(values, np.array([4]), np.array([1]))
    assert one[0, :, 0].tolist() == [1, 1, 1, 1] and one[0, :, 1:].sum() == 0
    diagonal = align.maximum_path(values, np.array([4]), np.array([4]))
    np.testing.assert_array_equal(diagonal[0], np.eye(4, dtype=np.int32))


def test_the_trainer_imports_it() -> None:
    torch = pytest.importorskip("torch")
    align.install()
    from piper.train.vits import monotonic_align

    rng = np.random.default_rng(7)
    neg_cent = torch.from_numpy(rng.normal(size=(2, 7, 3)).astype(np.float32))
    mask = torch.ones(2, 7, 3)
    mask[1, 5:, :] = 0  # the second item has 5 frames
    mask[1, :, 2:] = 0  # and 2 tokens
    path = monotonic_align.maximum_path(neg_cent, mask).numpy()
    assert path.shape == (2, 7, 3)
    np.testing.assert_array_equal(path[0], brute_force(neg_cent[0].numpy(), 7, 3))
    np.testing.assert_array_equal(path[1, :5, :2], brute_force(neg_cent[1, :5, :2].numpy(), 5, 2))
    assert path[1, 5:].sum() == 0 and path[1, :, 2:].sum() == 0
