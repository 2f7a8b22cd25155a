"""What `voxmill check` costs over just reading the audio: check (no --asr) vs a plain parallel decode.

Both run on the same >= 1000-clip corpus of real speech (the bundled Piper voice, 44.1 kHz FLAC, as
HF-style and studio corpora ship), with all cores, each in a fresh process; medians of 3 runs.
The plain decode is multiprocessing.Pool.map(soundfile.read) over the clip paths.

usage: python benchmarks/check_cost.py [CLIPS]      (default 1000)
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100


def make_corpus(folder: Path, count: int) -> Path:
    import soundfile as sf
    import soxr

    sys.path.insert(0, str(ROOT / "scripts"))
    from make_demo_corpus import write_corpus

    from voxmill.engine import RunOptions
    from voxmill.prepare import ClipOptions, PrepareOptions, parse_source, run

    base = folder / "base"
    write_corpus(base / "raw", 12)
    run(
        PrepareOptions(
            [parse_source(str(base / "raw"))], base / "ds", clip=ClipOptions(espeak_voice="en-us"),
            run=RunOptions(progress=False),
        )
    )  # fmt: skip
    corpus = folder / f"corpus{count}"
    (corpus / "wavs").mkdir(parents=True)
    flacs = []
    for wav in sorted((base / "ds" / "wavs").glob("*.wav")):
        data, sr = sf.read(wav, dtype="float32")
        flac = base / f"{wav.stem}.flac"
        sf.write(flac, soxr.resample(data, sr, RATE), RATE, subtype="PCM_16")
        flacs.append(flac)
    lines = (base / "ds" / "metadata.csv").read_text().splitlines()
    by_id = {line.split("|")[0]: line.split("|", 1)[1] for line in lines}
    rows = []
    for i in range(count):
        flac = flacs[i % len(flacs)]
        name = f"c{i:06d}"
        (corpus / "wavs" / f"{name}.flac").hardlink_to(flac)
        rows.append(f"{name}|{by_id[flac.stem]}\n")
    (corpus / "metadata.csv").write_text("".join(rows))
    config = json.loads((base / "ds" / "config.json").read_text())
    config["audio"]["sample_rate"] = RATE
    (corpus / "config.json").write_text(json.dumps(config))
    return corpus


def decode(path: str) -> float:
    """The plain per-clip work: read the file into float32 samples; returns its seconds."""
    import soundfile as sf

    data, sr = sf.read(path, dtype="float32")
    return float(data.shape[0] / sr)


# Spawned Pool workers import ``decode`` from this module (a function in a -c script cannot be found).
RUNNER = r"""
import json, multiprocessing as mp, sys, time
from pathlib import Path
sys.path.insert(0, {bench!r})
from check_cost import decode

if __name__ == "__main__":
    mode, corpus, workers = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    start = time.perf_counter()
    if mode == "decode":
        ids = [line.split("|")[0] for line in (corpus / "metadata.csv").read_text().splitlines()]
        with mp.get_context("spawn").Pool(workers) as pool:
            seconds = sum(pool.map(decode, [str(corpus / "wavs" / f"{{i}}.flac") for i in ids]))
    else:
        from voxmill.check import CheckOptions, run
        from voxmill.engine import RunOptions
        report = run(CheckOptions(corpus, run=RunOptions(workers=workers, progress=False)))
        seconds = report.summary["hours"] * 3600
    print(json.dumps({{"wall": time.perf_counter() - start, "seconds": seconds}}))
"""


def run_row(mode: str, corpus: Path, workers: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", RUNNER.format(bench=str(Path(__file__).parent)), mode, str(corpus), str(workers)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def breakdown(corpus: Path, count: int = 200) -> None:
    """Where a clip's time goes, one process, mean ms per clip: what the ratio above is made of."""
    import soundfile as sf

    from voxmill.audio import integrated_lufs, load
    from voxmill.audio.analysis import analyze
    from voxmill.text.phonemes import Phonemizer

    lines = (corpus / "metadata.csv").read_text().splitlines()[:count]
    paths = [corpus / "wavs" / f"{line.split('|')[0]}.flac" for line in lines]
    texts = [line.split("|")[-1] for line in lines]
    clips = [load(p) for p in paths]
    phonemizer = Phonemizer("en-us")
    steps = {
        "decode, soundfile.read (the baseline's work)": lambda i: sf.read(paths[i], dtype="float32"),
        "decode, voxmill (dr_flac)": lambda i: load(paths[i]),
        "loudness, BS.1770 (libebur128)": lambda i: integrated_lufs(clips[i].samples, clips[i].sample_rate),
        "levels, silence, clipping, SNR": lambda i: analyze(clips[i].samples, clips[i].sample_rate),
        "phonemes (espeak-ng)": lambda i: phonemizer.sentences(texts[i]),
    }
    print(f"\nper clip, one process, mean of {len(paths)} clips:")
    for label, step in steps.items():
        started = time.perf_counter()
        for i in range(len(paths)):
            step(i)
        print(f"  {label:<46}{(time.perf_counter() - started) / len(paths) * 1e3:>6.2f} ms")


def main() -> None:
    from voxmill.engine import usable_cores

    clips = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    cores = usable_cores()
    work = Path(tempfile.mkdtemp(prefix="voxmill-check-bench-"))
    try:
        started = time.perf_counter()
        corpus = make_corpus(work, clips)
        print(f"check_cost: {clips} clips of real speech (44.1 kHz FLAC), {cores} cores, median of 3 runs "
              f"(corpus made in {time.perf_counter() - started:.0f}s)\n")  # fmt: skip
        print(f"  {'runner':<34}{'wall s':>8}{'x realtime':>12}{'ratio':>8}")
        rows = {}
        for mode, label in (("decode", "plain parallel decode (Pool.map)"), ("check", "voxmill check (no --asr)")):
            runs = [run_row(mode, corpus, cores) for _ in range(3)]
            wall = statistics.median(r["wall"] for r in runs)
            rows[mode] = wall
            print(f"  {label:<34}{wall:>8.2f}{runs[0]['seconds'] / wall:>11.0f}x{wall / rows['decode']:>7.2f}x")
        print(f"\nverdict: check / decode = {rows['check'] / rows['decode']:.2f} (goal <= 1.5)")
        breakdown(corpus)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
