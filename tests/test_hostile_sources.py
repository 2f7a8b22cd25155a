"""Sources read as their authors meant them: Coqui folders, '|' inside transcripts, layouts decided by most
rows, reserved label names refused, UTF-16 metadata and wrong formats named in one line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from hostile import ljspeech, no_traceback, voxmill
from voxmill.audio import Audio, save


def _piper_rows(out: Path) -> list[list[str]]:
    """metadata.csv as Piper's trainer reads it (piper/train/vits/dataset.py: csv.reader, delimiter '|')."""
    with open(out / "metadata.csv", encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter="|"))


def _report(out: Path) -> dict[str, dict[str, str]]:
    return {e["id"]: e for e in map(json.loads, (out / "report.jsonl").read_text(encoding="utf-8").splitlines())}


def test_sources_coqui_folder_is_read_as_coqui(tmp_path: Path, short_speech: Audio) -> None:
    # Columns in another order and one more than the reader uses; the csv is not named metadata.csv.
    src = tmp_path / "coqui"
    lines = ["speaker_name|audio_file|emotion_name|text"]
    for i, speaker in enumerate(["anna", "boris", "anna", "boris"]):
        save(src / "wavs" / f"c{i}.wav", short_speech)
        lines.append(f"{speaker}|wavs/c{i}.wav|neutral|Sentence {i} | with a pipe.")
    (src / "meta_train.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert "coqui csv" in proc.stderr
    assert all(e["status"] == "ok" for e in _report(out).values()) and len(_report(out)) == 4
    rows = _piper_rows(out)
    assert sorted((r[1], r[2]) for r in rows) == sorted(
        (s, f"Sentence {i} | with a pipe.") for i, s in enumerate(["anna", "boris", "anna", "boris"])
    )
    assert json.loads((out / "config.json").read_text())["num_speakers"] == 2


def test_sources_pipe_in_transcript_round_trips(tmp_path: Path, short_speech: Audio) -> None:
    """One row with '|' does not make an id|text file 3-column; its text is kept whole, written so that
    Piper's trainer and voxmill's own reader (check) both read it back exactly."""
    from voxmill.corpus import Source, read_rows

    texts = {
        "p1": "The first line.",
        "p2": "Left | right.",
        "p3": '"Quoted," he said.',
        "p4": "The fourth line.",
        "p5": "The fifth line.",
    }
    src = ljspeech(tmp_path / "src", texts.items(), short_speech)
    out = tmp_path / "out"
    proc = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "read as id|text" in proc.stderr
    assert {r[0]: r[1] for r in _piper_rows(out)} == texts
    assert all(len(r) == 2 for r in _piper_rows(out))
    rows, layout = read_rows(Source(out))
    assert {r.id: r.text for r in rows} == texts and "id|text" in layout
    check = voxmill("check", str(out), "--workers", "1")
    no_traceback(check)
    assert check.returncode == 0 and "read as id|text; 5 rows" in check.stdout, check.stdout


def test_sources_row_that_does_not_fit_the_layout_is_failed_not_cut(tmp_path: Path, short_speech: Audio) -> None:
    from voxmill.corpus import Problem

    src = tmp_path / "src"
    lines = [f"n{i}|Sentence {i}.|sentence {i}." for i in range(4)]
    lines.append("n4|Left | right.|left | right.")  # 5 fields in an id|text|normalized file: ambiguous
    for i in range(5):
        save(src / "wavs" / f"n{i}.wav", short_speech)
    (src / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    proc = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    no_traceback(proc)
    assert proc.returncode == 1 and "read as id|text|normalized" in proc.stderr
    report = _report(out)
    assert report["n4"]["status"] == "failed" and report["n4"]["code"] == Problem.PARSE
    assert {r[0]: r[1] for r in _piper_rows(out)} == {f"n{i}": f"sentence {i}." for i in range(4)}


@pytest.mark.parametrize(
    "args",
    [
        ["--label", "text=X"],
        ["--label", "audio_filepath=/etc/passwd"],
        ["--label", "audio=x"],
        ["--label", "speaker_from_dir=0"],
        ["--label", "text_column=t"],
        ["SRC::duration=1"],
    ],
)
def test_sources_reserved_label_refused_up_front(tmp_path: Path, short_speech: Audio, args: list[str]) -> None:
    src = ljspeech(tmp_path / "src", [("r1", "One sentence.")], short_speech)
    out = tmp_path / "out"
    args = [a.replace("SRC", str(src)) for a in args]
    sources = [] if args[0].startswith(str(src)) else [str(src)]
    proc = voxmill("prepare", *sources, *args, "-o", str(out), "-f", "nemo", "-f", "hf", "--workers", "1")
    no_traceback(proc)
    assert proc.returncode == 2
    key = args[-1].split("::")[-1].split("=")[0]
    assert len(proc.stderr.strip().splitlines()) == 1 and repr(key) in proc.stderr, proc.stderr
    assert not (out / "manifest_train.jsonl").exists() and not (out / "hf").exists()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_sources_utf16_metadata_named_in_one_line(tmp_path: Path, short_speech: Audio, encoding: str) -> None:
    src = ljspeech(tmp_path / "src", [("LJ001", "Hello there."), ("LJ002", "Hello again.")], short_speech)
    (src / "metadata.csv").write_text("LJ001|Hello there.\nLJ002|Hello again.\n", encoding=encoding)
    for command in (["prepare", str(src), "-o", str(tmp_path / "out")], ["check", str(src)]):
        proc = voxmill(*command, "--workers", "1")
        no_traceback(proc)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "UTF-" in lines[0] and "metadata.csv" in lines[0]
        assert "\\x00" not in proc.stderr + proc.stdout


def test_sources_utf16_transcript_in_a_folder_is_one_failed_row(tmp_path: Path, short_speech: Audio) -> None:
    from voxmill.corpus import Problem, Source, read_rows

    save(tmp_path / "a.wav", short_speech)
    (tmp_path / "a.txt").write_text("Hello.", encoding="utf-16")
    (row,) = read_rows(Source(tmp_path))[0]
    assert row.problem == Problem.ENCODING and "UTF-16" in (row.error or "")


def test_sources_coqui_format_on_a_folder(tmp_path: Path, short_speech: Audio) -> None:
    src = ljspeech(tmp_path / "lj", [("c1", "Not coqui.")], short_speech)
    proc = voxmill("prepare", str(src), "--source-format", "coqui", "-o", str(tmp_path / "out"), "--workers", "1")
    no_traceback(proc)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Coqui" in proc.stderr
    (src / "metadata.csv").write_text("audio_file|text\nwavs/c1.wav|Now it is.\n", encoding="utf-8")
    out = tmp_path / "out2"
    proc = voxmill("prepare", str(src), "--source-format", "coqui", "-o", str(out), "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert [r[1] for r in _piper_rows(out)] == ["Now it is."]
