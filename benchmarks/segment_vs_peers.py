"""voxmill segment vs the usual way to cut a long recording into transcribed clips, same model, one run.

The recording: tests/data/mill.md read by the bundled Piper voice (scripts/make_audiobook.py: chapter and
paragraph pauses, light noise, the true timeline of every sentence), the book read again until it lasts
--minutes (default 20), cut at a sentence's end. Made once, cached in --workdir.
Both sides start in a fresh process on the same cores and are timed from outside, so each time includes
starting Python, loading the model, decoding, transcription and writing the clips:
  faster-whisper   the usual script: ``WhisperModel(<whisper:tiny.en>, device='cpu', compute_type='int8')``
                   (default cpu_threads), ``transcribe(audio16k, vad_filter=True, word_timestamps=True)``
                   on the whole file (its default beam_size, 5), then each segment cut out of the
                   recording and written as a wav file
  voxmill segment  ``voxmill segment REC -o OUT --workers auto``: no --text, default options (greedy
                   decoding, beam 1, with the same model)
The sides alternate (which one goes first swaps each repeat); wall time is the median of --repeats
(default 1: the 20-minute run takes a few minutes per side on 2 cores; use 3 for a steadier figure).
Clip CER (``voxmill.segment.align.cer``, both texts normalized), two ways: against the words said in the
clip's span (word times interpolated inside each true sentence; the goal uses this one), and against the
whole sentences whose middle lies in the clip. The second counts a correct half sentence as wrong, which is
what the peer's clips mostly are: Whisper ends its segments mid-sentence. Both sides' clips, with their true
text and CERs, are left in --workdir (clips-peer.json, clips-voxmill.json).
Peak RSS: the side's process and its workers together, sampled every 20 ms (``process_tree``;
``ru_maxrss`` would give the largest single process and, on Linux, carries a parent's size across fork
and exec).

usage: python benchmarks/segment_vs_peers.py [--minutes 20] [--repeats 1] [--workdir DIR] [--workers auto]
       [--peer-beam-size N]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from process_tree import run_measured

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "tests" / "data" / "mill.md"
MIN_SECONDS, MAX_SECONDS = 1.0, 15.0
GOAL_SPEEDUP = 1.8
CER_TOLERANCE = 0.005
CER_ROWS = (
    ("clip CER, span's words: median", "median_cer"),
    ("clip CER, span's words: mean", "mean_cer"),
    ("clip CER, whole sentences: median", "median_cer_sentences"),
    ("clip CER, whole sentences: mean", "mean_cer_sentences"),
)
COMMA_PAUSE = 0.45  # seconds the voice pauses at a comma, colon or semicolon (make_audiobook.py)
CLAUSE_MARK = re.compile(r"[,;:]")

PEER = r"""
import json, sys
from pathlib import Path
import soundfile as sf
from faster_whisper import WhisperModel, decode_audio

model_path, src, out, beam = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
model = WhisperModel(model_path, device="cpu", compute_type="int8")
audio16k = decode_audio(src, sampling_rate=16000)
options = {} if beam == "default" else {"beam_size": int(beam)}
segments, _ = model.transcribe(audio16k, vad_filter=True, word_timestamps=True, **options)
clips = []
with sf.SoundFile(src) as recording:  # cut at the segment boundaries, as a script would
    sr = recording.samplerate
    for n, segment in enumerate(segments):
        recording.seek(int(segment.start * sr))
        samples = recording.read(max(0, int(segment.end * sr) - int(segment.start * sr)), dtype="float32")
        out.mkdir(parents=True, exist_ok=True)
        sf.write(str(out / f"clip{n:05d}.wav"), samples, sr, subtype="PCM_16")
        clips.append({"start": segment.start, "end": segment.end, "text": segment.text.strip()})
print(json.dumps(clips))
"""


def build_recording(workdir: Path, minutes: float) -> tuple[Path, list[dict]]:
    """The cached recording of ``minutes`` and its truth: the book read once by make_audiobook.py (cached),
    read again as often as needed, and cut in the pause after the last sentence that fits."""
    import soundfile as sf

    book_audio, book_truth = workdir / "book.flac", workdir / "book.json"
    if not (book_audio.is_file() and book_truth.is_file()):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_audiobook.py"), str(BOOK), str(book_audio),
                        str(book_truth)], check=True)  # fmt: skip
    audio = workdir / f"recording-{minutes:g}min.flac"
    truth_path = audio.with_suffix(".json")
    if audio.is_file() and truth_path.is_file():
        return audio, json.loads(truth_path.read_text(encoding="utf-8"))
    once, sr = sf.read(str(book_audio), dtype="float32")
    sentences = json.loads(book_truth.read_text(encoding="utf-8"))
    length = once.shape[0] / sr
    target = minutes * 60.0
    truth: list[dict] = []
    for take in range(math.ceil(target / length)):
        for sentence in sentences:
            moved = {**sentence, "start": sentence["start"] + take * length, "end": sentence["end"] + take * length}
            if moved["end"] > target:
                break
            truth.append(moved)
    end = min(round((truth[-1]["end"] + 0.5) * sr), math.ceil(target / length) * once.shape[0])  # in a pause
    samples = np.tile(once, math.ceil(target / length))[:end]
    sf.write(str(audio), samples, sr, subtype="PCM_16")
    truth_path.write_text(json.dumps(truth, ensure_ascii=False), encoding="utf-8")
    return audio, truth


def sentence_text(truth: list[dict], start: float, end: float) -> str:
    """What was said in [start, end], in whole sentences: those whose middle lies in it, in order."""
    return " ".join(s["text"] for s in truth if start <= (s["start"] + s["end"]) / 2 <= end)


def word_text(truth: list[dict], start: float, end: float) -> str:
    """What was said in [start, end], word by word: the words whose estimated middle lies in it. Word
    times are interpolated inside each sentence by characters, with the voice's pause at each comma."""
    words = []
    for sentence in truth:
        if sentence["end"] < start or sentence["start"] > end:
            continue
        text = sentence["text"]
        pauses = COMMA_PAUSE * len(CLAUSE_MARK.findall(text))
        rate = max(sentence["end"] - sentence["start"] - pauses, 0.1) / max(len(text), 1)  # seconds per character
        for match in re.finditer(r"\S+", text):
            middle = (match.start() + match.end()) / 2
            at = sentence["start"] + rate * middle + COMMA_PAUSE * len(CLAUSE_MARK.findall(text, 0, match.start()))
            if start <= at <= end:
                words.append(match.group())
    return " ".join(words)


def run_peer(model: str, recording: Path, out: Path, beam: str) -> tuple[float, float, list[dict]]:
    shutil.rmtree(out, ignore_errors=True)
    wall, rss, stdout = run_measured([sys.executable, "-c", PEER, model, str(recording), str(out), beam])
    clips = json.loads(stdout.strip().splitlines()[-1])
    return wall, rss, [{**c, "seconds": c["end"] - c["start"]} for c in clips]


def run_voxmill(recording: Path, out: Path, workers: str) -> tuple[float, float, list[dict]]:
    shutil.rmtree(out, ignore_errors=True)
    voxmill = Path(sys.executable).with_name("voxmill")
    command = [str(voxmill), "--quiet", "segment", str(recording), "-o", str(out), "--workers", workers]
    wall, rss, _ = run_measured(command)
    clips = []
    with (out / "report.jsonl").open(encoding="utf-8") as report:
        for line in report:
            entry = json.loads(line)
            if entry.get("status") == "ok":  # the clips it wrote; dropped ones are not in the dataset
                clips.append({"start": entry["start"], "end": entry["end"], "text": entry["text"],
                              "seconds": entry.get("duration", entry["end"] - entry["start"])})  # fmt: skip
    return wall, rss, clips


def quality(clips: list[dict], truth: list[dict]) -> dict[str, float]:
    """Counts, bounds and CERs of one side's clips; each clip gets its ``cer`` (by words) and
    ``cer_sentences``."""
    from voxmill.segment.align import cer

    for clip in clips:
        clip["truth"] = word_text(truth, clip["start"], clip["end"])
        clip["cer"] = cer(clip["text"], clip["truth"])
        clip["cer_sentences"] = cer(clip["text"], sentence_text(truth, clip["start"], clip["end"]))
    by_words, by_sentences = [c["cer"] for c in clips], [c["cer_sentences"] for c in clips]
    inside = sum(1 for c in clips if MIN_SECONDS - 1e-3 <= c["seconds"] <= MAX_SECONDS + 1e-3)
    return {
        "clips": len(clips),
        "inside": inside,
        "inside_pct": 100.0 * inside / len(clips) if clips else 0.0,
        "median_cer": statistics.median(by_words) if clips else math.nan,
        "mean_cer": statistics.fmean(by_words) if clips else math.nan,
        "median_cer_sentences": statistics.median(by_sentences) if clips else math.nan,
        "mean_cer_sentences": statistics.fmean(by_sentences) if clips else math.nan,
        "minutes": sum(c["seconds"] for c in clips) / 60,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="length of the recording")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side (wall time: the median)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "voxmill-segment-bench",
                        help="where the recording is cached and the clips are written")  # fmt: skip
    parser.add_argument("--workers", default="auto", help="voxmill's --workers")
    parser.add_argument("--peer-beam-size", default="default", help="faster-whisper's beam_size (default: its own, 5)")
    args = parser.parse_args()
    from voxmill.engine import usable_cores
    from voxmill.models import Registry

    args.workdir.mkdir(parents=True, exist_ok=True)
    recording, truth = build_recording(args.workdir, args.minutes)
    model = str(Registry().resolve("whisper:tiny.en").path)
    print(f"segment_vs_peers: {recording.name} ({truth[-1]['end'] / 60:.1f} min, {len(truth)} sentences), "
          f"whisper tiny.en int8, {usable_cores()} cores, median of {args.repeats} run(s)\n", flush=True)  # fmt: skip
    walls: dict[str, list[float]] = {"peer": [], "voxmill": []}
    rss: dict[str, float] = {"peer": 0.0, "voxmill": 0.0}
    clips: dict[str, list[dict]] = {}
    for repeat in range(args.repeats):
        for side in ("peer", "voxmill") if repeat % 2 == 0 else ("voxmill", "peer"):
            if side == "peer":
                wall, peak, made = run_peer(model, recording, args.workdir / "peer-clips", args.peer_beam_size)
            else:
                wall, peak, made = run_voxmill(recording, args.workdir / "voxmill-out", args.workers)
            walls[side].append(wall)
            rss[side] = max(rss[side], peak)
            clips[side] = made
            print(f"  run {repeat + 1} {side}: {wall:.1f} s, {len(made)} clips", flush=True)
    wall = {side: statistics.median(times) for side, times in walls.items()}
    peer, ours = quality(clips["peer"], truth), quality(clips["voxmill"], truth)
    beam = "beam 5" if args.peer_beam_size == "default" else f"beam {args.peer_beam_size}"
    speedup = wall["peer"] / wall["voxmill"]
    inside = {side: f"{q['inside']} ({q['inside_pct']:.0f}%)" for side, q in (("peer", peer), ("voxmill", ours))}
    rows = [
        ("wall s (median)", f"{wall['peer']:.1f}", f"{wall['voxmill']:.1f}", f"{speedup:.2f}x"),
        ("clips", str(peer["clips"]), str(ours["clips"]), ""),
        ("clips in [1, 15] s", inside["peer"], inside["voxmill"], ""),
        ("minutes in clips", f"{peer['minutes']:.1f}", f"{ours['minutes']:.1f}", ""),
        *((name, f"{peer[key]:.2%}", f"{ours[key]:.2%}", "") for name, key in CER_ROWS),
        ("peak RSS MiB (tree)", f"{rss['peer']:.0f}", f"{rss['voxmill']:.0f}", f"{rss['peer'] / rss['voxmill']:.2f}x"),
    ]
    print(f"\n| | faster-whisper VAD + cut ({beam}) | voxmill segment | peer / voxmill |")
    print("|---|---:|---:|---:|")
    for name, a, b, ratio in rows:
        print(f"| {name} | {a} | {b} | {ratio} |")
    cer_ok = ours["mean_cer"] <= peer["mean_cer"] + CER_TOLERANCE
    cer_goal = f"goal <=, {CER_TOLERANCE:.1%} tolerance"
    goals = [
        (f"wall time: peer / voxmill = {speedup:.2f}x (goal >= {GOAL_SPEEDUP}x)", speedup >= GOAL_SPEEDUP),
        (f"mean clip CER: voxmill {ours['mean_cer']:.2%} vs peer {peer['mean_cer']:.2%} ({cer_goal})", cer_ok),
        (f"every voxmill clip in [1, 15] s: {ours['inside']} of {ours['clips']}", 0 < ours["inside"] == ours["clips"]),
    ]
    for side in clips:  # each clip with its truth and CERs, to look into
        (args.workdir / f"clips-{side}.json").write_text(json.dumps(clips[side], ensure_ascii=False, indent=1))
    print()
    for text, ok in goals:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


if __name__ == "__main__":
    main()
