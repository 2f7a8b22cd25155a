"""The same per-clip pipeline four ways, in one run: decode -> mono -> resample -> loudness -> PCM16 wav.

Rows: a sequential loop; multiprocessing.Pool.map over a list; HF datasets Dataset.map(num_proc=cores);
`voxmill prepare` (VAD trim off, so it does the same work); `voxmill prepare` serial, in one
process, which shows its per-clip cost apart from its scaling; and `voxmill prepare` on the ray backend,
joining a running one-node Ray (as a cluster run does), and starting a local Ray in the run.
Clips are real speech (the bundled Piper voice). Each row runs in a fresh process; wall seconds and
x realtime are medians of 3 runs; peak RSS is the main process's plus its largest worker's. Then
voxmill's peak RSS at 1k vs 10k clips.

usage: python benchmarks/prepare_vs_peers.py [CLIPS] [BIG]     (defaults 1000 and 10000; BIG 0 skips the RSS rows)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATE = 22050
SOURCE_RATE = 44100


def clip_pipeline(paths: tuple[str, str]) -> float:
    """The peers' per-clip function, with the libraries voxmill uses; returns the clip's input seconds."""
    import numpy as np
    import pyebur128
    import soundfile as sf
    import soxr

    src, dst = paths
    data, sr = sf.read(src, dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32)
    out = soxr.resample(mono, sr, RATE) if sr != RATE else mono
    meter = pyebur128.R128State(1, RATE, pyebur128.MeasurementMode.MODE_I)
    meter.add_frames(out, len(out))
    lufs = pyebur128.get_loudness_global(meter)
    gain = 10 ** ((-23.0 - lufs) / 20) if np.isfinite(lufs) else 1.0
    peak = float(np.max(np.abs(out))) * gain
    if peak > 10 ** (-1 / 20):  # same -1 dBFS ceiling as voxmill
        gain *= 10 ** (-1 / 20) / peak
    sf.write(dst, (out * gain).astype(np.float32), RATE, subtype="PCM_16")
    return len(mono) / sr


def _hf_map(batch: dict[str, list[str]]) -> dict[str, list[float]]:
    return {"seconds": [clip_pipeline((s, d)) for s, d in zip(batch["src"], batch["dst"], strict=True)]}


def make_corpus(folder: Path, count: int) -> Path:
    """``count`` clips of real speech: the 12-clip demo corpus, upsampled to 44.1 kHz (so every runner
    resamples, as it would for Common Voice or studio recordings), under many names (hard links)."""
    import soundfile as sf
    import soxr

    sys.path.insert(0, str(ROOT / "scripts"))
    from make_demo_corpus import write_corpus

    base = folder / "base"
    if not (base / "metadata.csv").exists():
        write_corpus(base / "22k", 12)
        (base / "wavs").mkdir(parents=True, exist_ok=True)
        for wav in sorted((base / "22k" / "wavs").glob("*.wav")):
            data, sr = sf.read(wav, dtype="float32")
            sf.write(base / "wavs" / wav.name, soxr.resample(data, sr, SOURCE_RATE), SOURCE_RATE, subtype="PCM_16")
        (base / "metadata.csv").write_text((base / "22k" / "metadata.csv").read_text())
    corpus = folder / f"corpus{count}"
    if (corpus / "metadata.csv").exists():
        return corpus
    (corpus / "wavs").mkdir(parents=True)
    lines = (base / "metadata.csv").read_text().splitlines()
    rows = []
    for i in range(count):
        clip_id, speaker, text = lines[i % len(lines)].split("|")
        name = f"c{i:06d}"
        (corpus / "wavs" / f"{name}.wav").hardlink_to(base / "wavs" / f"{clip_id}.wav")
        rows.append(f"{name}|{speaker}|{text}\n")
    (corpus / "metadata.csv").write_text("".join(rows))
    return corpus


RUNNER = r"""
import json, multiprocessing as mp, os, resource, sys, time
sys.path.insert(0, {bench!r})
from prepare_vs_peers import clip_pipeline, _hf_map
from pathlib import Path

def peak_self():
    return int(open('/proc/self/status').read().split('VmHWM:')[1].split()[0]) * 1024

if __name__ == '__main__':
    mode, corpus, out, workers = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
    out.mkdir(parents=True, exist_ok=True)
    ids = [l.split('|')[0] for l in (corpus / 'metadata.csv').read_text().splitlines()]
    jobs = [(str(corpus / 'wavs' / f'{{i}}.wav'), str(out / f'{{i}}.wav')) for i in ids]
    start = time.perf_counter()
    if mode == 'sequential':
        seconds = sum(clip_pipeline(j) for j in jobs)
    elif mode == 'pool':
        with mp.get_context('spawn').Pool(workers) as pool:
            seconds = sum(pool.map(clip_pipeline, jobs))
    elif mode == 'hf':
        import datasets
        datasets.disable_progress_bars()
        ds = datasets.Dataset.from_dict({{'src': [j[0] for j in jobs], 'dst': [j[1] for j in jobs]}})
        ds = ds.map(_hf_map, batched=True, batch_size=16, num_proc=workers, load_from_cache_file=False)
        seconds = sum(ds['seconds'])
    else:
        from voxmill.engine import RunOptions
        from voxmill.prepare import ClipOptions, PrepareOptions, parse_source, run
        serial = mode == 'voxmill-serial'
        backend = 'ray' if mode.startswith('voxmill-ray') else 'serial' if serial else 'process'
        address = os.environ.get('BENCH_RAY_ADDRESS') if mode == 'voxmill-ray' else None
        options = RunOptions(workers=1 if serial else workers, backend=backend, address=address, progress=False)
        result = run(PrepareOptions([parse_source(str(corpus))], out, formats=['piper'],
                                    clip=ClipOptions(trim=False), run=options))
        seconds = result.stats.hours_in * 3600
    wall = time.perf_counter() - start
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({{'wall': wall, 'seconds': seconds, 'main_peak': peak_self(), 'child_peak': child}}))
"""


@contextlib.contextmanager
def ray_head(work: Path, cores: int) -> Iterator[None]:
    """A one-node Ray cluster for the run (`ray start --head --block`), its address in BENCH_RAY_ADDRESS;
    stopped by killing only its own processes (`ray stop` would stop every Ray on the machine)."""
    import psutil

    temp = tempfile.mkdtemp(prefix="vxb")  # short: Ray's socket paths must fit in 107 bytes
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray_cli = str(Path(sys.executable).with_name("ray"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", str(cores),
                             "--temp-dir", temp, "--include-dashboard", "false", "--block"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    address = f"127.0.0.1:{port}"
    saved = os.environ.copy()
    try:
        while subprocess.run([ray_cli, "status", "--address", address], env=env, capture_output=True).returncode:
            time.sleep(1)
        os.environ.update(BENCH_RAY_ADDRESS=address, RAY_AUTH_MODE="disabled")
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        # The head's descendants (its agents retitle themselves, losing the temp dir from their
        # command line) and whatever names the temp dir.
        doomed: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            doomed += psutil.Process(head.pid).children(recursive=True)
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                if any(temp in part for part in proc.info["cmdline"] or []):
                    doomed.append(proc)
        for proc in doomed:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        head.kill()
        head.wait()
        shutil.rmtree(temp, ignore_errors=True)


def run_row(mode: str, corpus: Path, work: Path, workers: int) -> dict[str, float]:
    script = RUNNER.format(bench=str(Path(__file__).parent))
    out = work / f"out-{mode}"
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-c", script, mode, str(corpus), str(out), str(workers)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from voxmill.engine import usable_cores

    clips = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    big = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    cores = usable_cores()
    work = Path(tempfile.mkdtemp(prefix="voxmill-bench-"))
    try:
        corpus = make_corpus(work, clips)
        print(f"prepare_vs_peers: {clips} clips of real speech, {cores} cores, median of 3 runs\n")
        print(f"  {'runner':<26}{'wall s':>8}{'x realtime':>12}{'speedup':>9}{'peak RSS MiB (main + worker)':>31}")
        rows = {}
        for mode, label in (("sequential", "sequential loop"), ("pool", "multiprocessing Pool.map"),
                            ("hf", "HF datasets.map"), ("voxmill", "voxmill prepare"),
                            ("voxmill-serial", "voxmill prepare, serial"),
                            ("voxmill-ray", "voxmill prepare, ray"),
                            ("voxmill-ray-local", "  ray, starting its Ray")):  # fmt: skip
            with ray_head(work, cores) if mode == "voxmill-ray" else contextlib.nullcontext():
                runs = [run_row(mode, corpus, work, cores) for _ in range(3)]
            wall = statistics.median(r["wall"] for r in runs)
            rows[mode] = wall
            r = runs[0]
            base = rows["sequential"]
            print(
                f"  {label:<26}{wall:>8.2f}{r['seconds'] / wall:>11.0f}x{base / wall:>8.2f}x"
                f"{r['main_peak'] / 2**20:>17.0f} + "
                + ("(actors: Ray's processes)" if mode.startswith("voxmill-ray") else f"{r['child_peak'] / 2**20:.0f}")
            )
        print(f"\nverdicts: voxmill {rows['sequential'] / rows['voxmill']:.2f}x sequential (target >= 1.8x); "
              f"faster than Pool.map: {rows['voxmill'] < rows['pool']}; faster than HF datasets.map: "
              f"{rows['voxmill'] < rows['hf']}")  # fmt: skip
        own = rows["voxmill-serial"]
        print(f"  voxmill's own scaling: {cores} workers {own / rows['voxmill']:.2f}x its serial run; its serial "
              f"run is {rows['sequential'] / own:.2f}x the loop (per-clip work: it encodes in memory, skipping "
              f"libsndfile's per-file fsync, and takes mono files as they are)")  # fmt: skip
        print(f"  ray backend on one machine, joining a running Ray (`ray start --head`, as on a cluster): "
              f"{rows['voxmill-ray'] / rows['voxmill']:.2f}x the process backend's wall time (goal < 1.5x); "
              f"starting a local Ray in the run: {rows['voxmill-ray-local'] / rows['voxmill']:.2f}x")  # fmt: skip
        if big > 0:
            small = run_row("voxmill", corpus, work, cores)
            large = run_row("voxmill", make_corpus(work, big), work, cores)
            ratio = large["main_peak"] / small["main_peak"]
            print(f"\n  voxmill main-process peak RSS: {clips:,} clips {small['main_peak'] / 2**20:.0f} MiB, "
                  f"{big:,} clips {large['main_peak'] / 2**20:.0f} MiB ({ratio:.2f}x; target <= 1.3x)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
