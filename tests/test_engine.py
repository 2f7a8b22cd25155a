"""The engine under order, failure, crashes, timeouts, kills and Ctrl-C (real processes, no mocks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import engine_tasks as tasks
from voxmill.engine import Dropped, Failed, Journal, Ok, Pool, plan, share, sharing, usable_cores
from voxmill.errors import ConfigError

BACKENDS = ["serial", "thread", "process"]
TASKS_SCRIPT = Path(tasks.__file__)


def _runs(log: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in log.read_text().splitlines()) if log.exists() else Counter()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ordered_mode_keeps_input_order(backend: str) -> None:
    rng = np.random.default_rng(0)
    delays = {i: float(rng.uniform(0, 0.02)) for i in range(40)}
    outcomes = Pool(workers=2, backend=backend, progress=False).map(tasks.Square(delay=delays), range(40))
    assert [o.index for o in outcomes] == list(range(40))
    assert [o.value for o in outcomes] == [i * i for i in range(40)]
    assert all(o.id == str(o.index) and o.item == o.index and not o.resumed for o in outcomes)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_unordered_mode_yields_early_finishers_first(backend: str) -> None:
    pool = Pool(workers=2, backend=backend, progress=False)
    outcomes = list(pool.imap(tasks.Square(delay={0: 1.5}), range(12), ordered=False))
    order = [o.index for o in outcomes]
    assert sorted(order) == list(range(12))
    assert order[0] != 0 and order.index(0) > 5


@pytest.mark.parametrize("backend", BACKENDS)
def test_input_is_consumed_lazily_within_the_window(backend: str) -> None:
    pulled = 0

    def items():  # records how far the engine has read
        nonlocal pulled
        for i in range(200):
            pulled += 1
            yield i

    window = 6
    seen = 0
    for outcome in Pool(workers=2, backend=backend, window=window, progress=False).imap(tasks.Square(), items()):
        seen += 1
        assert pulled <= seen + window, f"read {pulled} items with {seen} yielded"
        assert outcome.ok
    assert seen == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_drop_and_fail_are_outcomes_not_crashes(backend: str) -> None:
    outcomes = Pool(workers=2, backend=backend, progress=False).map(tasks.Square(), [1, "drop", "fail", 3])
    assert outcomes[0].result == Ok(1)
    assert outcomes[1].result == Dropped("asked to drop")
    failed = outcomes[2].result
    assert isinstance(failed, Failed) and failed.error == "ValueError" and failed.message == "asked to fail"
    assert "Traceback" in failed.traceback and "asked to fail" in failed.traceback
    assert outcomes[3].result == Ok(9)
    with pytest.raises(ValueError, match="has no value"):
        _ = outcomes[2].value


@pytest.mark.parametrize("backend", BACKENDS)
def test_setup_failure_fails_every_item_with_the_reason(backend: str) -> None:
    outcomes = Pool(workers=2, backend=backend, progress=False).map(tasks.BrokenSetup(), range(3))
    for outcome in outcomes:
        assert isinstance(outcome.result, Failed)
        assert "task setup failed: model file missing" in outcome.result.message


def test_worker_killed_mid_run_retries_only_its_item(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    task = tasks.KillOnce(victim=7, log=str(log), marker=str(tmp_path / "killed"))
    outcomes = Pool(workers=2, backend="process", progress=False).map(task, range(20))
    assert [o.value for o in outcomes] == [i + 1000 for i in range(20)]
    runs = _runs(log)
    assert runs["7"] == 2  # killed once, retried once
    assert all(runs[str(i)] == 1 for i in range(20) if i != 7)


def test_item_that_always_kills_its_worker_fails_after_one_retry(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    outcomes = Pool(workers=2, backend="process", progress=False).map(tasks.KillOnce(victim=3, log=str(log)), range(10))
    failed = outcomes[3].result
    assert isinstance(failed, Failed) and failed.error == "WorkerDied"
    assert "killed by SIGKILL" in failed.message and "after 1 retry" in failed.message
    assert all(o.ok for i, o in enumerate(outcomes) if i != 3)
    assert _runs(log)["3"] == 2


def test_workers_that_cannot_start_fail_the_items_instead_of_respawning_forever() -> None:
    start = time.monotonic()
    outcomes = Pool(workers=2, backend="process", progress=False).map(tasks.DieInSetup(), range(6))
    assert time.monotonic() - start < 30
    for outcome in outcomes:
        assert isinstance(outcome.result, Failed) and "before they start" in outcome.result.message
        assert "exit code 7" in outcome.result.message


def test_worker_exit_is_reported_with_its_code() -> None:
    outcomes = Pool(workers=2, backend="process", progress=False).map(tasks.Exit(), range(5))
    assert isinstance(outcomes[2].result, Failed) and "exit code 3" in outcomes[2].result.message
    assert [o.value for i, o in enumerate(outcomes) if i != 2] == [0, 1, 3, 4]


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_timeout_fails_the_item_and_recycles_the_worker(backend: str) -> None:
    start = time.monotonic()
    outcomes = Pool(workers=2, backend=backend, progress=False).map(
        tasks.Square(delay={2: 30.0}), range(8), timeout=1.0
    )
    assert time.monotonic() - start < 15
    failed = outcomes[2].result
    assert isinstance(failed, Failed) and failed.error == "Timeout"
    assert [o.value for i, o in enumerate(outcomes) if i != 2] == [i * i for i in range(8) if i != 2]


def test_journal_skips_finished_items_and_yields_them_resumed(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    with Journal(tmp_path / "journal.db") as journal:
        first = Pool(workers=2, progress=False).map(tasks.Square(log=str(log)), [1, "drop", "fail", 4], journal=journal)
    with Journal(tmp_path / "journal.db") as journal:
        assert len(journal) == 3 and journal.failed() == {"2": "ValueError: asked to fail"}
        second = Pool(workers=2, progress=False).map(
            tasks.Square(log=str(log)), [1, "drop", "fail", 4], journal=journal
        )
    assert [o.result for o in second] == [o.result for o in first]
    assert [o.resumed for o in second] == [True, True, False, True]
    assert _runs(log) == Counter({"1": 1, "drop": 1, "fail": 2, "4": 1})  # only the failure runs again


def test_fully_resumed_run_starts_no_workers(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        Pool(workers=2, backend="thread", progress=False).map(tasks.Square(), range(5), journal=journal)
        pool = Pool(workers=2, backend="process", progress=False)
        start = time.monotonic()
        again = pool.map(tasks.Square(), range(5), journal=journal)
    assert time.monotonic() - start < 0.3  # no process was spawned
    assert all(o.resumed and o.ok for o in again)


def test_parent_sigkilled_then_rerun_with_journal(tmp_path: Path) -> None:
    journal, log1, log2 = tmp_path / "journal.db", tmp_path / "run1.log", tmp_path / "run2.log"
    args = [sys.executable, str(TASKS_SCRIPT), str(journal)]
    proc = subprocess.Popen([*args, str(log1), "30", "0.1"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    printed = [proc.stdout.readline() for _ in range(8)]
    proc.kill()
    proc.wait()
    with Journal(journal) as recorded:
        finished_before = {str(i) for i in range(30) if recorded.finished(str(i))}
    assert {line.split()[0] for line in printed} <= finished_before

    rerun = subprocess.run([*args, str(log2), "30", "0.1"], capture_output=True, text=True, check=True)
    rows = [line.split() for line in rerun.stdout.splitlines()]
    assert [(int(i), int(v)) for i, v, _ in rows] == [(i, i * i) for i in range(30)]  # equals a clean run
    assert {i for i, _, resumed in rows if resumed == "1"} == finished_before
    assert not set(_runs(log2)) & finished_before  # no finished item ran again


def test_ctrl_c_ends_within_5s_and_loses_nothing(tmp_path: Path) -> None:
    journal, log = tmp_path / "journal.db", tmp_path / "run.log"
    proc = subprocess.Popen(
        [sys.executable, str(TASKS_SCRIPT), str(journal), str(log), "200", "0.5"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # SIGINT may be ignored when the tests run as a background job: give the child the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    printed = [proc.stdout.readline().split()[0] for _ in range(4)]
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole foreground group
    start = time.monotonic()
    rest = proc.stdout.read()
    code = proc.wait(timeout=10)
    assert time.monotonic() - start < 5.0
    assert code == 130
    printed += [line.split()[0] for line in rest.splitlines()]
    with Journal(journal) as recorded:
        assert all(recorded.finished(i) for i in printed)
    worker_pids = {int(line.split()[1]) for line in log.read_text().splitlines()}
    time.sleep(0.2)
    for pid in worker_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_shared_files_of_a_cancelled_or_killed_run_are_removed(tmp_path: Path) -> None:
    spool = sharing._spool_dir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = spool / f"voxmill-{dead.pid}-{'ab' * 16}.npy"  # an owner SIGKILLed before it could clean up
    live = spool / f"voxmill-{os.getpid()}-{'cd' * 16}.npy"  # a running owner's: not touched
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    script = tmp_path / "run.py"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(TASKS_SCRIPT.parent)!r})\nimport engine_tasks as tasks\n"
        "from voxmill.engine import Pool\nif __name__ == '__main__':\n"
        "    for o in Pool(workers=2, backend='process', progress=False).imap(tasks.SlowShare(0.3), range(100)):\n"
        "        print(o.index, flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None
        [proc.stdout.readline() for _ in range(3)]  # results shared, handed over and never taken
        assert list(spool.glob(f"voxmill-{proc.pid}-*"))
        assert not stale.exists()  # swept when the run started sharing
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=10)
        assert live.exists()
        assert not list(spool.glob(f"voxmill-{proc.pid}-*"))  # the owner's leftovers went with it
    finally:
        live.unlink(missing_ok=True)
        stale.unlink(missing_ok=True)
        proc.kill()


def test_thread_budget_reaches_the_workers() -> None:
    cores = usable_cores()
    assert plan("auto", "auto").workers == cores
    assert plan("auto", "auto", items=1) == plan(1, cores)  # never more workers than items
    assert plan(4, "auto").threads_per_worker == max(1, cores // 4)
    outcomes = Pool(workers=1, backend="process", progress=False).map(tasks.Env(), [0])
    assert outcomes[0].value == (str(cores), cores, 0)
    # Bad run options are a ConfigError naming the option (exit 2 in the CLI), not a ValueError.
    with pytest.raises(ConfigError, match="--workers 0"):
        Pool(workers=0)
    with pytest.raises(ConfigError, match="--backend 'gpu'"):
        Pool(backend="gpu")


def test_session_options_follow_the_budget() -> None:
    from voxmill.engine import session_options

    options = session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_large_arrays_cross_processes_by_reference() -> None:
    arrays = [np.full(200_000, i, np.float32) for i in range(4)]
    outcomes = Pool(workers=2, backend="process", progress=False).map(tasks.Louder(), [share(a) for a in arrays])
    for i, outcome in enumerate(outcomes):
        ref = outcome.value
        assert len(ref.path) < 200  # a path crossed the pipe, not 800 kB of samples
        np.testing.assert_array_equal(ref.take(), np.full(200_000, 2 * i, np.float32))
        assert not Path(ref.path).exists()


@pytest.mark.parametrize("backend", ["thread", "serial"])
def test_arrays_stay_in_the_process_with_threads(backend: str) -> None:
    # Workers in this process: a result's array is handed over as it is, never through a /dev/shm file.
    spool = {p.name for p in Path("/dev/shm").glob(f"voxmill-{os.getpid()}-*")}
    arrays = [np.full(50_000, i, np.float32) for i in range(4)]
    outcomes = Pool(workers=2, backend=backend, progress=False).map(tasks.Louder(), [share(a) for a in arrays])
    for i, outcome in enumerate(outcomes):
        ref = outcome.value
        assert ref.path == "" and ref.data is not None
        np.testing.assert_array_equal(ref.take(), np.full(50_000, 2 * i, np.float32))
    assert {p.name for p in Path("/dev/shm").glob(f"voxmill-{os.getpid()}-*")} <= spool


def test_audio_seconds_are_reported() -> None:
    outcomes = Pool(workers=1, backend="thread", progress=False).map(tasks.Audio(), range(3))
    assert [o.audio_seconds for o in outcomes] == [2.5, 2.5, 2.5]


def test_progress_bar_renders(capsys: pytest.CaptureFixture[str]) -> None:
    Pool(workers=2, backend="thread", progress=True, description="squaring").map(tasks.Square(), [1, "fail", 3])
    err = capsys.readouterr().err
    assert "squaring" in err and "3/3" in err and "1 failed" in err


def test_progress_rates_are_in_hours_of_audio() -> None:
    from voxmill.engine.progress import rates_text

    text = rates_text(done=900, audio_seconds=7200.0, failed=2, elapsed=10.0)
    assert "90.0 items/s" in text and "2.00 h audio" in text and "0.200 h/s (720x realtime)" in text
    assert "2 failed" in text
    assert "h/s" not in rates_text(done=5, audio_seconds=0.0, failed=0, elapsed=1.0)
