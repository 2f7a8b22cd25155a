"""Engine scaling on this machine: voxmill's backends against the executors users write by hand.

(a) GIL-bound work: a pure-Python 6-band biquad EQ + envelope loop over real speech (Piper, en_US-joe-medium).
(b) GIL-releasing C work: WORLD (pyworld) analysis + resynthesis of real speech clips.
    Each row: sequential loop, ThreadPoolExecutor, naive ProcessPoolExecutor(spawn) with pickled
    arrays, voxmill thread backend, voxmill process backend (the signal shared once, items are
    offsets). Wall seconds are the median of 3 repetitions; pool start-up is inside the timing.
(c) Per-item overhead: 10,000 trivial items through each backend.
(d) Peak RSS of the parent streaming 200,000 items (window 8) vs multiprocessing.Pool.map.

usage: python benchmarks/engine_scaling.py [--quick]
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voxmill.engine import Pool, SharedArray, Task, WorkerContext, share, usable_cores

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3


# ---- the work ------------------------------------------------------------------------------------


def filterbank_envelope(samples: np.ndarray) -> float:
    """Pure-Python DSP: a 6-band biquad EQ cascade then an RMS envelope follower, sample by sample."""
    coeffs = [(0.0675, 0.135, 0.0675, -1.143, 0.4128), (0.2929, 0.0, -0.2929, -0.5858, 0.4142)] * 3
    state = [[0.0, 0.0, 0.0, 0.0] for _ in coeffs]
    env = peak = 0.0
    for x in samples.tolist():
        for (b0, b1, b2, a1, a2), st in zip(coeffs, state, strict=True):
            y = b0 * x + b1 * st[0] + b2 * st[1] - a1 * st[2] - a2 * st[3]
            st[1], st[0], st[3], st[2] = st[0], x, st[2], y
            x = y
        env = 0.999 * env + 0.001 * x * x
        if env > peak:
            peak = env
    return math.sqrt(peak)


def world_resynth(samples: np.ndarray, sr: int = 22050) -> float:
    """WORLD vocoder: F0 (DIO + StoneMask), spectral envelope, aperiodicity, resynthesis."""
    import pyworld

    x = samples.astype(np.float64)
    f0, t = pyworld.dio(x, sr)
    f0 = pyworld.stonemask(x, f0, t, sr)
    sp = pyworld.cheaptrick(x, f0, t, sr)
    ap = pyworld.d4c(x, f0, t, sr)
    y = pyworld.synthesize(f0, sp, ap, sr)
    return float(np.sqrt(np.mean(y**2)))


WORK: dict[str, Callable[[np.ndarray], float]] = {"gil": filterbank_envelope, "world": world_resynth}


@dataclass
class SliceTask(Task):
    """voxmill's way: the signal is shared once; each item is (start, stop) into it."""

    ref: SharedArray
    work: str

    def setup(self, ctx: WorkerContext) -> None:
        self.signal = self.ref.get()

    def __call__(self, span: tuple[int, int]) -> float:
        return WORK[self.work](np.asarray(self.signal[span[0] : span[1]]))


@dataclass
class Noop(Task):
    def __call__(self, item: Any) -> Any:
        return item


def _noop(item: Any) -> Any:
    return item


# ---- data ------------------------------------------------------------------------------------------


def real_speech(seconds: float) -> np.ndarray:
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_demo_audio import SENTENCES, synthesize_speech

    speech, _ = synthesize_speech(" ".join(SENTENCES))
    reps = int(np.ceil(seconds * 22050 / speech.shape[0]))
    return np.tile(speech, reps)[: int(seconds * 22050)]


def spans(total: int, size: int) -> list[tuple[int, int]]:
    return [(s, s + size) for s in range(0, total - size + 1, size)]


# ---- runners ---------------------------------------------------------------------------------------


def median_time(run: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def scaling_row(name: str, signal: np.ndarray, span_list: list[tuple[int, int]], cores: int) -> list[tuple]:
    fn = WORK[name]
    chunks = [signal[a:b] for a, b in span_list]  # what the naive scripts pickle to workers
    ref = share(signal)
    runners: dict[str, Callable[[], list[float]]] = {
        "sequential loop": lambda: [fn(c) for c in chunks],
        "ThreadPoolExecutor": lambda: _executor(ThreadPoolExecutor(cores), fn, chunks),
        "ProcessPoolExecutor(spawn)": lambda: _executor(
            ProcessPoolExecutor(cores, mp_context=mp.get_context("spawn")), fn, chunks
        ),
        "voxmill thread": lambda: [
            o.value for o in Pool(cores, "thread", progress=False).imap(SliceTask(ref, name), span_list)
        ],
        "voxmill process": lambda: [
            o.value for o in Pool(cores, "process", progress=False).imap(SliceTask(ref, name), span_list)
        ],
    }
    rows, expected, base = [], None, None
    try:
        for label, run in runners.items():
            seconds, values = median_time(run)
            if expected is None:
                expected, base = values, seconds
            elif not np.allclose(values, expected):
                raise RuntimeError(f"{label} computed different results")
            rows.append((label, seconds, base / seconds))
    finally:
        ref.release()
    return rows


def _executor(executor: Any, fn: Callable[[np.ndarray], float], chunks: list[np.ndarray]) -> list[float]:
    with executor as ex:
        return list(ex.map(fn, chunks))


def overhead_rows(count: int, cores: int) -> list[tuple[str, float]]:
    rows = []
    for backend in ("serial", "thread", "process"):
        seconds, _ = median_time(
            lambda b=backend: sum(1 for _ in Pool(cores, b, progress=False).imap(Noop(), range(count)))
        )
        rows.append((f"voxmill {backend}", seconds / count * 1e6))
    seconds, _ = median_time(
        lambda: _executor(ProcessPoolExecutor(cores, mp_context=mp.get_context("spawn")), _noop, range(count))
    )
    rows.append(("ProcessPoolExecutor(spawn)", seconds / count * 1e6))
    return rows


RSS_CHILD = """
import json, sys, multiprocessing as mp
import numpy as np
sys.path.insert(0, {bench!r})
from engine_scaling import Noop, _rsum
from voxmill.engine import Pool

def items(n):
    for i in range(n):
        yield np.full(256, i % 7, np.float32)

def peak():
    return int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024

if __name__ == '__main__':
    mode, n = sys.argv[1], int(sys.argv[2])
    if mode == 'voxmill':
        done = sum(1 for _ in Pool(2, 'process', window=8, progress=False).imap(Noop(), items(n)))
    else:
        with mp.get_context('spawn').Pool(2) as pool:
            done = len(pool.map(_rsum, list(items(n))))
    print(json.dumps({{'done': done, 'peak': peak()}}))
"""


def _rsum(a: np.ndarray) -> float:
    return float(a.sum())


def rss_rows(big: int, small: int) -> list[tuple[str, int, float]]:
    script = RSS_CHILD.format(bench=str(Path(__file__).parent))
    rows = []
    for mode, n in (("voxmill", small), ("voxmill", big), ("Pool.map", big)):
        out = subprocess.run([sys.executable, "-c", script, mode, str(n)], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout)
        assert result["done"] == n
        rows.append((f"{mode} streaming" if mode == "voxmill" else mode, n, result["peak"] / 2**20))
    return rows


def main() -> None:
    quick = "--quick" in sys.argv
    cores = usable_cores()
    print(f"engine_scaling: {cores} usable cores, Python {sys.version.split()[0]}, median of {REPEATS} runs\n")
    signal = real_speech(60 if quick else 480)
    sections = [
        ("(a) GIL-bound: pure-Python 6-band EQ over real speech", "gil", 4 * 22050),
        ("(b) GIL-releasing C: WORLD analysis + resynthesis of real speech", "world", 2 * 22050),
    ]
    verdicts = []
    for title, name, size in sections:
        span_list = spans(
            signal.shape[0] if name == "gil" else min(signal.shape[0], (30 if quick else 120) * 22050), size
        )
        rows = scaling_row(name, signal, span_list, cores)
        print(f"{title}: {len(span_list)} items")
        print(f"  {'runner':<28}{'wall s':>9}{'speedup':>9}")
        for label, seconds, speedup in rows:
            print(f"  {label:<28}{seconds:>9.2f}{speedup:>8.2f}x")
        by = {label: seconds for label, seconds, _ in rows}
        best_naive = min(by["ThreadPoolExecutor"], by["ProcessPoolExecutor(spawn)"])
        best_vox = min(by["voxmill thread"], by["voxmill process"])
        speedup = by["sequential loop"] / (by["voxmill process"] if name == "gil" else best_vox)
        verdicts.append(
            f"{name}: voxmill {speedup:.2f}x sequential (target >= 1.85x); "
            f"voxmill/best naive time {best_vox / best_naive:.3f} (target <= 1.05)"
        )
        print()

    count = 2_000 if quick else 10_000
    print(f"(c) per-item overhead, {count:,} trivial items")
    for label, micros in overhead_rows(count, cores):
        print(f"  {label:<28}{micros:>9.0f} us/item")
    print()

    big, small = (20_000, 2_000) if quick else (200_000, 20_000)
    print(f"(d) parent peak RSS, {big:,} items of 1 KiB")
    rss = rss_rows(big, small)
    for label, n, mib in rss:
        print(f"  {label:<28}{n:>9,} items {mib:>8.0f} MiB")
    verdicts.append(
        f"rss: voxmill {big:,} / {small:,} items = {rss[1][2] / rss[0][2]:.2f}x (target < 2x); "
        f"Pool.map uses {rss[2][2] / rss[1][2]:.1f}x voxmill's peak"
    )
    print("\nverdicts:\n  " + "\n  ".join(verdicts))


if __name__ == "__main__":
    main()
