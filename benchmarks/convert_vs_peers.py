"""voxmill convert vs the usual ways to run a voice changer over a long recording (pitch +4, WORLD).

Rows, each in a fresh process on the same >= 10-minute real-speech recording (the bundled Piper
voice with pauses and a 42-s stretch without any, 22050 Hz FLAC):
  sequential              equal 30-s chunks, one after another, concatenated
  ThreadPoolExecutor      the same chunks on threads (pyworld releases the GIL)
  ProcessPool script      the usual script: equal chunks, spawn, pickled arrays, plain concatenation
  voxmill auto            convert.run: cuts at pauses, backend chosen for the processor, stitched
Per row: wall time (median of N runs), speedup vs sequential, peak RSS (the process and its workers
together, sampled every 20 ms; ru_maxrss would be wrong here: Linux carries it across fork and exec),
and the largest sample-to-sample jump at chunk joins beside the largest inside the chunks.
Then voxmill alone on a 30-minute recording with 2 workers: its peak RSS (goal <= 400 MB).

usage: python benchmarks/convert_vs_peers.py [MINUTES] [RUNS] [LONG_MINUTES]   (default 10 3 30)
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from process_tree import run_measured

ROOT = Path(__file__).resolve().parents[1]
CHUNK_SECONDS = 30.0
SEMITONES = 4.0


def pitch(samples: np.ndarray, sr: int) -> np.ndarray:
    """The peers' per-chunk work: the same WORLD pitch shift voxmill's ``pitch`` processor does."""
    from voxmill.convert import ChunkAudio
    from voxmill.convert.processors.pitch import PitchShift

    out, _ = PitchShift(semitones=SEMITONES).process(ChunkAudio(samples, sr, 0, 0))
    return out


RUNNER = r"""
import json, sys, time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
import multiprocessing as mp
sys.path.insert(0, {bench!r})
import numpy as np, soundfile as sf
from convert_vs_peers import CHUNK_SECONDS, pitch

if __name__ == "__main__":
    mode, src, out, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    start = time.perf_counter()
    joins = []
    if mode == "voxmill":
        from voxmill.convert import ConvertOptions, run
        from voxmill.convert.processors.pitch import PitchShift
        from voxmill.engine import RunOptions
        opts = ConvertOptions(inputs=[src], output=out, processor=PitchShift(semitones=4.0),
                              run=RunOptions(workers=workers, progress=False))
        result = run(opts).files[0].converted
        joins, backend = result.joins, result.plan.backend
    else:
        x, sr = sf.read(src, dtype="float32")
        size = int(CHUNK_SECONDS * sr)
        chunks = [x[i : i + size] for i in range(0, x.shape[0], size)]
        srs = [sr] * len(chunks)
        if mode == "sequential":
            parts = [pitch(c, sr) for c in chunks]
        elif mode == "threads":
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(pitch, chunks, srs))
        else:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
                parts = list(pool.map(pitch, chunks, srs))
        joins = list(np.cumsum([p.shape[0] for p in parts])[:-1])
        sf.write(out, np.concatenate(parts), sr)
        backend = mode
    wall = time.perf_counter() - start
    print(json.dumps({{"wall": wall, "joins": [int(j) for j in joins], "backend": backend}}))
"""


def run_row(mode: str, src: Path, out: Path, workers: int) -> dict:
    """One run in a fresh process; adds ``rss``: peak MiB of it and its workers together."""
    command = [sys.executable, "-c", RUNNER.format(bench=str(Path(__file__).parent)), mode, str(src), str(out),
               str(workers)]  # fmt: skip
    _, rss, stdout = run_measured(command)
    result: dict = json.loads(stdout.strip().splitlines()[-1])
    result["rss"] = rss
    return result


def jumps(path: Path, joins: list[int]) -> tuple[float, float]:
    import soundfile as sf

    y, _ = sf.read(path, dtype="float32")
    steps = np.abs(np.diff(y))
    at = [j - 1 for j in joins if 0 < j < y.shape[0]]
    at_joins = float(steps[at].max()) if at else 0.0
    inside = float(np.delete(steps, at).max())
    return at_joins, inside


def main() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from make_demo_recording import write_recording

    from voxmill.engine import usable_cores

    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    long_minutes = float(sys.argv[3]) if len(sys.argv) > 3 else 30.0
    cores = usable_cores()
    work = Path(tempfile.mkdtemp(prefix="voxmill-convert-bench-"))
    try:
        src = write_recording(work / "recording.flac", minutes)
        print(f"convert_vs_peers: {minutes:g}-minute real-speech recording, pitch +{SEMITONES:g} (WORLD), "
              f"{cores} cores, median of {runs} run(s)\n")  # fmt: skip
        header = f"  {'runner':<26}{'wall s':>8}{'speedup':>9}{'peak RSS MiB':>22}{'max jump: joins':>17}{'inside':>8}"
        print(header, flush=True)
        rows = {}
        labels = {"sequential": "sequential", "threads": "ThreadPoolExecutor", "processes": "ProcessPool script",
                  "voxmill": "voxmill auto"}  # fmt: skip
        for mode, label in labels.items():
            out = work / f"{mode}.wav"
            results = [run_row(mode, src, out, cores) for _ in range(runs)]
            wall = statistics.median(r["wall"] for r in results)
            rows[mode] = wall
            at_joins, inside = jumps(out, results[-1]["joins"])
            rss = f"{max(r['rss'] for r in results):.0f}"
            name = label + (f" ({results[-1]['backend']})" if mode == "voxmill" else "")
            print(
                f"  {name:<26}{wall:>8.1f}{rows['sequential'] / wall:>8.2f}x{rss:>22}{at_joins:>17.4f}{inside:>8.4f}",
                flush=True,
            )
        best_peer = min(rows[m] for m in ("threads", "processes"))
        print(f"\nverdict: voxmill {rows['sequential'] / rows['voxmill']:.2f}x sequential (goal >= 1.85x); "
              f"{best_peer / rows['voxmill']:.2f}x the best peer (goal >= 1.0)")  # fmt: skip
        if long_minutes > 0:
            long_src = write_recording(work / "long.flac", long_minutes, seed=1)
            src.unlink()
            result = run_row("voxmill", long_src, work / "long.wav", 2)
            rss = f"{result['rss']:.0f} MiB"
            label = f"voxmill, {long_minutes:g}-minute input, 2 workers"
            print(f"{label}: {result['wall']:.0f}s, peak RSS {rss} (goal <= 400 MB)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
