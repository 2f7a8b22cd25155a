"""``prepare``'s run options, typed result and reason codes (issue 18), through the real CLI where a user sees them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hostile import BAD_RUN_FLAGS, ljspeech, no_traceback, voxmill
from voxmill.audio import Audio
from voxmill.engine import RunOptions, WorkerContext
from voxmill.errors import ConfigError, Reason
from voxmill.prepare import ClipOptions, PrepareOptions, parse_source, run


@pytest.mark.parametrize(("flag", "value"), BAD_RUN_FLAGS)
def test_bad_run_flag_is_one_line_usage_error_before_any_work(
    tmp_path: Path, short_speech: Audio, flag: str, value: str
) -> None:
    src = ljspeech(tmp_path / "src", [("a", "Some words.")], short_speech)
    out = tmp_path / "out"
    done = voxmill("prepare", str(src), "-o", str(out), flag, value, timeout=120)
    no_traceback(done)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_bad_run_options_in_the_library_raise_config_error_before_any_work(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "out"
    for bad in (RunOptions(backend="bogus"), RunOptions(workers=0), RunOptions(timeout=-1.0)):
        with pytest.raises(ConfigError):
            run(PrepareOptions([parse_source(str(corpus))], out, run=bad))
    assert not out.exists()


def test_settings_reach_prepare_and_the_plan_is_printed(tmp_path: Path, short_speech: Audio) -> None:
    src = ljspeech(tmp_path / "src", [(f"c{i}", "Some words.") for i in range(3)], short_speech)
    env = {"VOXMILL_BACKEND": "thread", "VOXMILL_WORKERS": "2"}
    done = voxmill("prepare", str(src), "-o", str(tmp_path / "a"), env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ran on 2 thread workers x " in done.stderr, done.stderr
    # A flag beats the settings.
    done = voxmill("prepare", str(src), "-o", str(tmp_path / "b"), "--backend", "serial", "--workers", "1",
                   env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "ran on 1 serial worker x " in done.stderr, done.stderr
    done = voxmill("prepare", str(src), "-o", str(tmp_path / "c"), env={"VOXMILL_WORKERS": "abc"}, timeout=120)
    no_traceback(done)
    assert done.returncode == 2 and "VOXMILL_WORKERS" in done.stderr, done.stderr


def test_timeout_and_threads_flags_reach_the_run(tmp_path: Path, short_speech: Audio) -> None:
    src = ljspeech(tmp_path / "src", [("a", "Some words."), ("b", "More words.")], short_speech)
    out = tmp_path / "out"
    done = voxmill("prepare", str(src), "-o", str(out), "--workers", "1", "--threads-per-worker", "1",
                   "--timeout", "0.001", timeout=300)  # fmt: skip
    no_traceback(done)
    assert done.returncode == 1, done.stderr
    assert "ran on 1 process worker x 1 thread" in done.stderr, done.stderr
    report = [json.loads(line) for line in (out / "report.jsonl").read_text().splitlines()]
    assert [e["code"] for e in report] == [Reason.TIMEOUT, Reason.TIMEOUT]
    assert "timed out (2: a, b)" in " ".join(done.stdout.split())


def test_reasons_are_codes_and_stats_are_typed(tmp_path: Path, short_speech: Audio) -> None:
    src = ljspeech(tmp_path / "src", [("good", "A good clip."), ("cut", "Cut short."), ("gone", "No file.")],
                   short_speech)  # fmt: skip
    (src / "wavs" / "cut.wav").write_bytes((src / "wavs" / "good.wav").read_bytes()[:3000])
    (src / "wavs" / "gone.wav").unlink()
    with (src / "metadata.csv").open("a") as fh:
        fh.write("blank|   \n")
    (src / "wavs" / "blank.wav").write_bytes((src / "wavs" / "good.wav").read_bytes())
    out = tmp_path / "out"
    result = run(PrepareOptions([parse_source(str(src))], out, run=RunOptions(workers=1, progress=False)))
    assert result.exit_code == 1 and result.counts == {"ok": 1, "failed": 2, "dropped": 1}
    report = {e["id"]: e for e in map(json.loads, (out / "report.jsonl").read_text().splitlines())}
    assert report["cut"]["code"] == Reason.TRUNCATED and "truncated" in report["cut"]["reason"]
    assert report["gone"]["code"] == "audio file not found"  # the reader's Problem, finer than any Reason
    assert report["blank"]["code"] == "empty text"
    groups = {(g.status, g.code): g for g in result.stats.reasons}
    truncated = groups["failed", "truncated"]
    assert truncated.examples == ("cut",) and truncated.words == "truncated audio"
    assert groups["dropped", "empty text"].count == 1
    assert [g.code for g in result.stats.top("failed")] == ["truncated", "audio file not found"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats == result.stats.to_dict()
    assert stats["reasons"]["failed"] == {"truncated audio": 1, "audio file not found": 1}
    assert stats["reason_codes"]["failed"]["truncated audio"] == "truncated"


def test_trim_leases_silero_from_the_workers_model_manager(tmp_path: Path, corpus: Path) -> None:
    from voxmill.corpus import read_rows
    from voxmill.models import Registry
    from voxmill.prepare.steps import PrepareItem, PrepareTask

    task = PrepareTask(ClipOptions(), str(tmp_path / "stage"), vad=Registry().resolve("silero-vad"))
    ctx = WorkerContext(index=0, workers=1, threads=1, backend="serial")
    task.setup(ctx)
    row = next(iter(read_rows(parse_source(str(corpus)))[0]))
    clip = task(PrepareItem.of(row, task.digest))
    assert clip.seconds_out < clip.seconds_in  # the padding was trimmed
    assert "silero-vad" in {status.name for status in ctx.models.status()}
    with pytest.raises(ConfigError):  # trimming without the model is caught in the parent, before any worker
        PrepareTask(ClipOptions(), str(tmp_path / "stage")).preflight()


def _files(out: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(out)): (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".voxmill" not in p.parts
    }


def test_resume_of_a_finished_run_is_a_no_op_until_something_changes(tmp_path: Path, short_speech: Audio) -> None:
    src = ljspeech(tmp_path / "src", [(f"c{i}", f"Sentence {i}.") for i in range(3)], short_speech)
    out = tmp_path / "out"
    args = ("prepare", str(src), "-o", str(out), "-f", "piper", "-f", "hf", "--workers", "1")
    first = voxmill(*args, timeout=300)
    assert first.returncode == 0, first.stderr
    before = _files(out)
    again = voxmill(*args, "--resume", timeout=300)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stderr and "ran on" not in again.stderr, again.stderr
    assert _files(out) == before  # not one file rewritten
    assert again.stdout.split("details in")[0] == first.stdout.split("details in")[0]  # the same summary

    (out / "wavs" / "c1.wav").unlink()  # a file the run wrote is gone: every row runs again
    done = voxmill(*args, "--resume", timeout=300)
    assert done.returncode == 0 and "ran on 1 process worker" in done.stderr, done.stderr
    assert {k: v[1] for k, v in _files(out).items()} == {k: v[1] for k, v in before.items()}

    assert "nothing to do" in voxmill(*args, "--resume", timeout=300).stderr
    (src / "metadata.csv").write_text((src / "metadata.csv").read_text().replace("Sentence 2", "Corrected 2"))
    done = voxmill(*args, "--resume", timeout=300)
    assert done.returncode == 0 and "ran on" in done.stderr, done.stderr
    assert "c2|Corrected 2." in (out / "metadata.csv").read_text()

    # Another option (the seed of the split) changes the dataset: it runs again too.
    result = run(PrepareOptions([parse_source(str(src))], out, formats=["piper", "hf"], resume=True, seed=3,
                                run=RunOptions(workers=1, progress=False)))  # fmt: skip
    assert not result.unchanged and result.plan is not None


def test_a_finished_run_with_failed_rows_retries_them_on_resume(tmp_path: Path, short_speech: Audio) -> None:
    src = ljspeech(tmp_path / "src", [("good", "A good clip."), ("bad", "A broken clip.")], short_speech)
    (src / "wavs" / "bad.wav").write_bytes(b"RIFF not audio at all" * 40)
    opts = PrepareOptions([parse_source(str(src))], tmp_path / "out", run=RunOptions(workers=1, progress=False))
    assert run(opts).counts == {"ok": 1, "failed": 1}
    opts.resume = True
    result = run(opts)
    assert not result.unchanged and result.counts == {"ok": 1, "failed": 1}


def test_a_damaged_finished_mark_only_means_every_row_runs_again(tmp_path: Path, short_speech: Audio) -> None:
    import os

    src = ljspeech(tmp_path / "src", [("a", "Some words.")], short_speech)
    opts = PrepareOptions([parse_source(str(src))], tmp_path / "out", run=RunOptions(workers=1, progress=False))
    run(opts)
    mark = tmp_path / "out" / ".voxmill" / "finished.json"
    opts.resume = True
    for damage in ("garbage", '{"version": "prepare-finished/1", "fingerprint": 1}', "fifo"):
        mark.unlink()
        if damage == "fifo":
            os.mkfifo(mark)  # read, it would hang the run
        else:
            mark.write_text(damage)
        result = run(opts)
        assert not result.unchanged and result.counts == {"ok": 1}, damage
        assert run(opts).unchanged  # and the rerun marked itself finished again
