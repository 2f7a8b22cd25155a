"""Verdicts that mean something: empty, silent or tiny datasets are not READY; empty runs are not success."""

from __future__ import annotations

from pathlib import Path

import pytest


def _check_report(dataset, **options):  # type: ignore[no-untyped-def]
    """``voxmill.check.run`` in this process (serial backend: no worker start-up per test)."""
    from voxmill.check import CheckOptions, run
    from voxmill.engine import RunOptions

    return run(CheckOptions(dataset, run=RunOptions(workers=1, backend="serial", progress=False), **options))


def _severity(report, check_id):  # type: ignore[no-untyped-def]
    return {f.severity.value for f in report.by_id(check_id)}


def test_check_empty_folder_is_not_ready(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hostile import no_traceback, voxmill

    (tmp_path / "empty").mkdir()
    report = _check_report(tmp_path / "empty")
    assert not report.ready and _severity(report, "dataset.size") == {"FAIL"}
    proc = voxmill("check", str(tmp_path / "empty"))
    no_traceback(proc)
    assert proc.returncode == 1 and "NOT READY" in proc.stdout and "0 clips" in proc.stdout, proc.stdout


def test_check_silent_dataset_is_not_ready_and_silence_is_counted_once(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from hostile import ljspeech
    from voxmill.audio import Audio, save

    # One long clip of digital silence (the was 2 hours; 40 s behaves the same) with a transcript.
    silent = Audio(np.zeros(40 * short_speech.sample_rate, np.float32), short_speech.sample_rate)
    ljspeech(tmp_path / "silent", [("quiet", "A sentence nobody said.")], silent)
    report = _check_report(tmp_path / "silent")
    assert not report.ready
    assert _severity(report, "dataset.silence") == {"FAIL"} and _severity(report, "audio.no_speech") == {"FAIL"}
    # All of it is silence, at one end: not "40.0s + 40.0s" of edge silence in a 40 s clip.
    for f in report.findings:
        assert not any("40.0s + 40.0s" in item for item in f.items), f
    from voxmill.check.stats import AnalyseClip
    from voxmill.corpus import Row
    from voxmill.engine import WorkerContext

    measure = AnalyseClip()
    measure.setup(WorkerContext(0, 1, 1, "serial"))
    stats = measure(Row("quiet", "test", audio_path=str(tmp_path / "silent" / "wavs" / "quiet.wav"), text="x"))
    assert stats.leading_silence + stats.trailing_silence <= stats.duration + 1e-6 and stats.speech_seconds == 0
    # Mostly silence: one short spoken clip beside it does not make the dataset speech.
    save(tmp_path / "silent" / "wavs" / "spoken.wav", short_speech)
    with open(tmp_path / "silent" / "metadata.csv", "a", encoding="utf-8") as meta:
        meta.write("spoken|The first clip.\n")
    report = _check_report(tmp_path / "silent")
    assert not report.ready and _severity(report, "dataset.silence") == {"FAIL"}


def test_check_warns_when_there_is_too_little_speech(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    from hostile import ljspeech

    ljspeech(tmp_path / "tiny", [(f"c{i}", f"Sentence number {i}.") for i in range(4)], short_speech)
    report = _check_report(tmp_path / "tiny")
    [size] = report.by_id("dataset.size")
    assert size.severity.value == "WARN" and "min of speech" in size.message and "30 min" in size.message
    assert not _check_report(tmp_path / "tiny", strict=True).ready


def test_check_prints_ids_and_texts_verbatim_no_markup_no_emoji(tmp_path, short_speech, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from hostile import ljspeech
    from voxmill.cli.main import main

    monkeypatch.chdir(tmp_path)
    ljspeech(tmp_path / "ds", [("a", "Hello there.")], short_speech)
    with open(tmp_path / "ds" / "metadata.csv", "a", encoding="utf-8") as meta:
        meta.write("x:thumbs_up:y|[red]ghost[/red] row.\n")  # no audio: listed by metadata.missing_audio
    main(["--quiet", "check", str(tmp_path / "ds"), "--workers", "1", "--backend", "serial"])
    out = capsys.readouterr().out
    assert "x:thumbs_up:y" in out and "\N{THUMBS UP SIGN}" not in out, out


def test_prepare_reading_no_rows_is_an_error(tmp_path, short_speech):
    from hostile import ljspeech, no_traceback, voxmill

    (tmp_path / "empty").mkdir()
    src = ljspeech(tmp_path / "ljs", [("v1", "A verdict sentence.")], short_speech)
    for args, name in (([str(tmp_path / "empty")], "empty"), ([str(src), "--source-format", "parquet"], "ljs")):
        done = voxmill("prepare", *args, "-o", str(tmp_path / f"out-{name}"), "--workers", "1")
        no_traceback(done)
        assert done.returncode == 2, done.stderr
        assert f"no rows read from {tmp_path / name}" in done.stderr, done.stderr
        assert not (tmp_path / f"out-{name}" / "metadata.csv").exists()
    # Fixing the command afterwards needs no --overwrite: the failed run left nothing behind.
    done = voxmill("prepare", str(src), "-o", str(tmp_path / "out-ljs"), "--workers", "1")
    assert done.returncode == 0, done.stderr


def test_prepare_top_reasons_group_by_kind_with_examples(tmp_path, short_speech):
    import json

    from hostile import ljspeech, no_traceback, voxmill

    src = ljspeech(tmp_path / "src", [("good", "A good clip.")], short_speech)
    with (src / "metadata.csv").open("a") as fh:
        for i in range(5):
            (src / "wavs" / f"bad{i}.wav").write_bytes((src / "wavs" / "good.wav").read_bytes()[:3000])
            fh.write(f"bad{i}|Truncated clip {i}.\n")
    out = tmp_path / "out"
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1")
    no_traceback(done)
    assert done.returncode == 1
    stats = json.loads((out / "stats.json").read_text())
    assert stats["reasons"]["failed"] == {"truncated audio": 5}  # grouped by code (Reason.TRUNCATED)
    assert stats["reason_examples"]["failed"]["truncated audio"] == ["bad0", "bad1", "bad2"]
    assert "truncated audio (5: bad0, bad1, bad2, ...)" in " ".join(done.stdout.split())
    assert "bad3.wav" not in done.stdout  # one group, not a file path per line


def test_cli_an_unexpected_os_error_is_one_line_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A full disk mid-run is the system's "no", not a voxmill bug: one line naming the file, exit 1.
    import errno

    import voxmill.cli.prepare
    from voxmill.cli.main import main

    def full_disk(_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / "wavs" / "a.wav"))

    monkeypatch.setattr(voxmill.cli.prepare, "run", full_disk)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "metadata.csv").write_text("a|hello\n", encoding="utf-8")
    code = main(["prepare", str(tmp_path / "corpus"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        f"voxmill: error: [Errno 28] No space left on device: '{tmp_path}/out/wavs/a.wav'"
    ]
