"""Bad option values: one line naming the option and the reason, exit 2, never a traceback."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hostile import ljspeech, no_traceback, voxmill
from voxmill.audio import Audio, save

# Each value once failed with a ValueError traceback (exit 1) deep in the engine, after the command
# had already created its output folder.
BAD_WORKERS = ["0", "-1", "abc", "1.5", ""]


def _inputs(folder: Path, speech: Audio) -> Path:
    """A 2-clip LJSpeech corpus, a wav and nothing else: what the four commands below read."""
    if not (folder / "corpus" / "metadata.csv").exists():
        ljspeech(folder / "corpus", [("one", "The first clip."), ("two", "The second clip.")], speech)
        save(folder / "in.wav", speech)
    return folder


COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "prepare": lambda d: ["prepare", str(d / "corpus"), "-o", str(d / "out")],
    "check": lambda d: ["check", str(d / "corpus"), "--report", str(d / "out")],
    "convert": lambda d: ["convert", str(d / "in.wav"), str(d / "out" / "x.wav"), "-p", "pitch"],
    "synth": lambda d: ["synth", "Hello there.", "-o", str(d / "out" / "x.wav")],
}


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """The CLI's own entry point (``voxmill.cli.main.main``) in this process: exit code and stderr."""
    from voxmill.cli.main import main

    code = main(["--quiet", *argv])
    return code, capsys.readouterr().err


def _one_line_usage_error(code: int, err: str, option: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert option in err, err


@pytest.fixture
def inputs(tmp_path: Path, short_speech: Audio, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no voxmill.yaml of the machine applies
    for name in [n for n in os.environ if n.startswith("VOXMILL_")]:
        monkeypatch.delenv(name)
    return _inputs(tmp_path, short_speech)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("value", BAD_WORKERS)
def test_options_bad_workers_are_one_line_exit_2_before_any_work(
    inputs: Path, capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    code, err = _main(capsys, *COMMANDS[command](inputs), "--workers", value)
    _one_line_usage_error(code, err, f"--workers {value!r}")
    assert not (inputs / "out").exists()  # validated before the output was created


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_options_unknown_backend_is_one_line_exit_2(
    inputs: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, err = _main(capsys, *COMMANDS[command](inputs), "--backend", "foo")
    _one_line_usage_error(code, err, "--backend 'foo'")
    assert not (inputs / "out").exists()


@pytest.mark.parametrize("value", ["0", "-1"])
def test_options_check_batch_size_must_be_positive(
    inputs: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, err = _main(capsys, "check", str(inputs / "corpus"), "--batch-size", value)
    _one_line_usage_error(code, err, f"--batch-size {value}")


def test_options_check_report_under_a_file_or_unwritable(inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (inputs / "a-file").write_text("not a folder")
    for report in (inputs / "a-file" / "report", inputs / "a-file"):
        code, err = _main(capsys, "check", str(inputs / "corpus"), "--workers", "1", "--report", str(report))
        _one_line_usage_error(code, err, f"--report {report}")
        assert "voxmill: error:" in err  # an unusable output, not a bad setting
    # /proc takes no new folders, for root too (mkdir: ENOENT there), so the report cannot be written.
    code, err = _main(capsys, "check", str(inputs / "corpus"), "--workers", "1", "--backend", "serial",
                      "--report", "/proc/voxmill-report")  # fmt: skip
    _one_line_usage_error(code, err, "--report /proc/voxmill-report")


def test_options_config_folder_is_named_a_folder(inputs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(capsys, "--config", str(inputs), "check", str(inputs / "corpus"))
    _one_line_usage_error(code, err, "is a folder")
    assert "not found" not in err
    code, err = _main(capsys, "check", str(inputs / "corpus"), "--config", str(inputs / "corpus"))
    _one_line_usage_error(code, err, "is a folder")


def test_options_engine_validates_in_one_place() -> None:
    from voxmill.engine import Pool, RunOptions, parse_workers
    from voxmill.errors import ConfigError

    assert parse_workers(" 3 ") == 3 and parse_workers("AUTO") == "auto" and parse_workers(2) == 2
    for bad in ("abc", "1.5", "", "0", "-1", 0, -1, 1.5, True, None):
        with pytest.raises(ConfigError, match="--workers"):
            parse_workers(bad)
    with pytest.raises(ConfigError, match="--workers 'abc': expected a positive whole number or 'auto'"):
        RunOptions(workers="abc").validate()
    with pytest.raises(ConfigError, match="--backend"):
        RunOptions(backend="gpu").validate()
    with pytest.raises(ConfigError, match="--timeout"):
        RunOptions(timeout=0).validate()
    with pytest.raises(ConfigError, match="--threads-per-worker"):
        Pool(threads_per_worker=0)
    with pytest.raises(ConfigError, match="--timeout"):
        Pool(workers=1, backend="serial").imap(lambda x: x, [1], timeout=-1)


def test_options_real_cli_process_exits_2_without_traceback(inputs: Path) -> None:
    proc = voxmill(*COMMANDS["prepare"](inputs), "--workers", "abc")
    no_traceback(proc)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        "voxmill: config error: --workers 'abc': expected a positive whole number or 'auto'"
    )
    assert not (inputs / "out").exists()


# Each once ended in a traceback (ValueError from an empty argmin, OverflowError, FileExistsError), or
# ran with a value that has no meaning (NaN thresholds, a 0 Hz or 10^11 Hz output).
CONVERT_BAD = [
    ("--chunk-seconds", "0.01"),
    ("--chunk-seconds", "0"),
    ("--chunk-seconds", "-5"),
    ("--chunk-seconds", "nan"),
    ("--chunk-seconds", "1e300"),
    ("--min-chunk-seconds", "-1"),
    ("--threshold-db", "nan"),
    ("--min-silence-ms", "inf"),
    ("--max-silence-kept-ms", "-1"),
    ("--sample-rate", "0"),
    ("--sample-rate", "99999999999"),
    ("--semitones", "nan"),
    ("--peak-ceiling-db", "nan"),
]


def test_convert_absurd_numbers_are_one_line_config_errors(
    tmp_path: Path, short_speech: Audio, capsys: pytest.CaptureFixture[str]
) -> None:
    from voxmill.audio import save
    from voxmill.cli.main import main

    source = save(tmp_path / "in.wav", short_speech)
    out = tmp_path / "out" / "x.wav"
    for option, value in CONVERT_BAD:
        code = main(["--quiet", "convert", str(source), str(out), "-p", "pitch", option, value])
        err = capsys.readouterr().err
        assert code == 2, (option, value, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (option, value, err)
        assert option in err or "semitones" in err, (option, value, err)
        assert not out.exists()


def test_convert_output_under_a_file_or_where_nothing_can_be_written(
    tmp_path: Path, short_speech: Audio, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    from voxmill.audio import save
    from voxmill.cli.main import main

    source = save(tmp_path / "in.wav", short_speech)
    (tmp_path / "a-file").write_text("not a folder")
    # /proc takes no new files, for root too.
    for out in (tmp_path / "a-file" / "out.wav", tmp_path / "a-file" / "deeper" / "out.wav", Path("/proc/out.wav")):
        code = main(["--quiet", "convert", str(source), str(out), "-p", "loudness", "--no-parallel"])
        err = capsys.readouterr().err
        assert code == 2, (out, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and str(out) in err, (out, err)


def test_prepare_absurd_numbers_are_refused_before_any_work(tmp_path, corpus):
    import dataclasses

    import pytest

    from hostile import no_traceback, voxmill
    from voxmill.engine import RunOptions
    from voxmill.errors import ConfigError
    from voxmill.prepare import ClipOptions, PrepareOptions, parse_source, run

    bad = {
        "val_fraction": [2.0, -0.5, 1.0, float("nan")],
        "val_size": [-1],
        "keep_silence": [-1.0, float("inf")],
        "sample_rate": [0, -22050, 10**9],
        "min_duration": [-1.0, float("nan")],
        "max_duration": [0.0, -5.0, float("nan")],
        "max_clipping": [-0.1, 1.5],
        "max_per_speaker": [0, -3],
        "loudness": [5.0, -1000.0, float("nan")],
        "peak_ceiling": [3.0],
    }
    out = tmp_path / "out"
    for name, values in bad.items():
        for value in values:
            clip = {name: value} if name in {f.name for f in dataclasses.fields(ClipOptions)} else {}
            own = {} if clip else {name: value}
            opts = PrepareOptions([parse_source(str(corpus))], out, clip=ClipOptions(**clip), **own,
                                  run=RunOptions(workers=1, progress=False))  # fmt: skip
            with pytest.raises(ConfigError) as caught:
                run(opts)
            flag = name.replace("_", "-")
            assert flag in str(caught.value) or name.replace("_", " ") in str(caught.value), (name, value)
    assert not out.exists() or not any(out.iterdir())  # refused up front: nothing written
    for args in (["--val-fraction", "2"], ["--sample-rate", "0"], ["--min-duration", "5", "--max-duration", "2"]):
        done = voxmill("prepare", str(corpus), "-o", str(out), "--workers", "1", *args)
        no_traceback(done)
        assert done.returncode == 2 and args[-2] in done.stderr, done.stderr


SYNTH_BAD = [
    ("--sentence-silence", "nan"), ("--sentence-silence", "1e12"), ("--paragraph-silence", "-1"),
    ("--chapter-silence", "inf"), ("--length-scale", "inf"), ("--length-scale", "0"), ("--noise-scale", "nan"),
    ("--noise-w", "-0.5"), ("--max-chars", "100000000000000000000"), ("--max-chars", "5"),
    ("--target-lufs", "nan"), ("--target-lufs", "12"), ("--peak-ceiling-db", "5"), ("--peak-ceiling-db", "-inf"),
]  # fmt: skip


def test_synth_absurd_numbers_are_one_line_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from voxmill.cli.main import main

    out = tmp_path / "out" / "x.wav"
    for option, value in SYNTH_BAD:
        code = main(["--quiet", "synth", "Hello there. The wheel turned.", "-o", str(out), option, value])
        err = capsys.readouterr().err
        assert code == 2, (option, value, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (option, value, err)
        assert option in err, (option, value, err)
        assert not out.parent.exists()  # refused before anything was made


def test_synth_output_under_a_file_or_where_nothing_can_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from voxmill.cli.main import main

    (tmp_path / "a-file").write_text("not a folder")
    outputs = [
        ["-o", str(tmp_path / "a-file" / "out.wav")],
        ["-o", str(tmp_path / "a-file" / "deeper" / "out.wav")],
        ["-o", str(tmp_path / "a-file" / "chapters"), "--chapters"],
        ["-o", "/proc/out.wav"],  # /proc takes no new files, for root too
        ["-o", "/proc/voxmill-chapters", "--chapters"],
    ]
    for args in outputs:
        code = main(["--quiet", "synth", "Hello there.", *args])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and args[1] in err, (args, err)
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_attack_convert_revoice_unknown_voice_or_asr_is_a_usage_error(tmp_path, short_speech) -> None:  # type: ignore[no-untyped-def]
    from hostile import no_traceback, voxmill
    from voxmill.audio import save

    source = save(tmp_path / "in.wav", short_speech)
    # A name is looked up among known models; text with a "/" is a path the user wrote (Registry.resolve),
    # and one that is not a voice is refused naming it.
    for option, reason in (
        (["--voice", "../../etc/passwd"], "../../etc/passwd: "),
        (["--set", "asr=nope"], "unknown model"),
    ):
        proc = voxmill("convert", str(source), str(tmp_path / "out.wav"), "-p", "revoice", *option)
        no_traceback(proc)
        assert proc.returncode == 2, (option, proc.stderr)
        assert reason in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not (tmp_path / "out.wav").exists()


def test_attack_synth_bad_peak_ceiling_names_the_real_flag(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from hostile import no_traceback, voxmill

    proc = voxmill("synth", "Hello.", "-o", str(tmp_path / "x.wav"), "--peak-ceiling-db", "nan")
    no_traceback(proc)
    assert proc.returncode == 2
    assert "--peak-ceiling-db nan" in proc.stderr
