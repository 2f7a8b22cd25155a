"""The engine's public surface: any picklable callable, preflight, the plan of a run, one model manager
per process, and the reason codes of failures (real workers, no mocks)."""

from __future__ import annotations

import functools
import multiprocessing
import time
from pathlib import Path

import pytest

import engine_tasks as tasks
from voxmill.engine import Failed, Journal, Pool, ThreadPlan
from voxmill.errors import MissingExtraError, Reason

BACKENDS = ["serial", "thread", "process"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_plain_functions_and_partials_run_like_tasks(backend: str) -> None:
    pool = Pool(workers=2, backend=backend, progress=False)
    assert [o.value for o in pool.map(tasks.cube, range(6))] == [i**3 for i in range(6)]
    partial = functools.partial(tasks.scaled, 7)
    assert sorted(o.value for o in pool.imap(partial, range(5), ordered=False)) == [7 * i for i in range(5)]


def test_a_callable_that_is_not_one_is_refused() -> None:
    with pytest.raises(TypeError, match="callable"):
        Pool(workers=1, backend="serial", progress=False).map(42, range(3))  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
def test_preflight_stops_the_run_once_before_any_worker(backend: str, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    calls: list[int] = []
    outcomes = Pool(workers=2, backend=backend, progress=False).imap(tasks.NeedsExtra(calls, str(log)), range(50))
    start = time.monotonic()
    with pytest.raises(MissingExtraError, match=r"voxmill\[convert\]"):
        next(outcomes)
    assert time.monotonic() - start < 1.0  # no worker process was started
    assert calls == [1]
    assert not log.exists()  # no item ran
    assert not multiprocessing.active_children()


def test_preflight_runs_once_even_when_everything_is_resumed(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.db") as journal:
        Pool(workers=1, backend="serial", progress=False).map(tasks.cube, range(3), journal=journal)
        calls: list[int] = []
        with pytest.raises(MissingExtraError):
            Pool(workers=1, backend="serial", progress=False).map(tasks.NeedsExtra(calls), range(3), journal=journal)
    assert calls == [1]


def test_thread_workers_share_one_model_manager_with_the_whole_budget() -> None:
    budget = 1 << 30
    outcomes = Pool(workers=2, backend="thread", model_budget=budget, progress=False).map(tasks.Models(), range(4))
    values = [o.value for o in outcomes]
    assert len({thread for _, thread, _, _ in values}) == 2  # two workers ran items
    assert len({manager for _, _, manager, _ in values}) == 1  # and held one manager
    assert {b for *_, b in values} == {budget}


def test_worker_processes_each_have_their_own_manager_with_a_share_of_the_budget() -> None:
    budget = 1 << 30
    outcomes = Pool(workers=2, backend="process", model_budget=budget, progress=False).map(tasks.Models(), range(4))
    values = [o.value for o in outcomes]
    assert len({pid for pid, *_ in values}) == 2
    assert {b for *_, b in values} == {budget // 2}


def test_the_pool_reports_the_plan_of_its_run() -> None:
    pool = Pool(workers=2, backend="thread", threads_per_worker=1, progress=False)
    assert pool.plan is None
    pool.map(tasks.cube, range(10))
    assert pool.plan == ThreadPlan(2, 1, "thread")
    assert pool.plan.describe() == "2 thread workers x 1 thread"
    pool.map(tasks.cube, range(1))  # never more workers than items
    assert pool.plan.describe() == "1 thread worker x 1 thread"
    assert ThreadPlan(1, 4).describe() == "1 process worker x 4 threads"


def test_a_worker_killed_mid_item_is_retried_once_then_failed_as_worker_died(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    with Journal(tmp_path / "j.db") as journal:
        outcomes = Pool(workers=2, backend="process", progress=False).map(
            tasks.KillOnce(victim=3, log=str(log)), range(6), journal=journal
        )
        failed = outcomes[3].result
        assert isinstance(failed, Failed) and failed.code is Reason.WORKER_DIED
        assert "after 1 retry" in failed.message
        assert [line for line in log.read_text().split() if line == "3"] == ["3", "3"]
        assert journal._db.execute("SELECT code FROM records WHERE id = '3'").fetchone() == ("worker_died",)


@pytest.mark.parametrize("backend", ["thread", "process"])
def test_timeout_is_failed_with_code_timeout(backend: str) -> None:
    outcomes = Pool(workers=2, backend=backend, progress=False).map(
        tasks.Square(delay={1: 30.0}), range(4), timeout=1.0
    )
    failed = outcomes[1].result
    assert isinstance(failed, Failed) and failed.code is Reason.TIMEOUT
    assert [o.ok for o in outcomes] == [True, False, True, True]
