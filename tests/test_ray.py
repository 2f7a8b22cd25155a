"""The Ray backend on a real local Ray (2 CPUs) and a real two-node cluster on this machine."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest

import engine_tasks as tasks
from voxmill.engine import Dropped, Failed, Ok, Pool, RunOptions, share
from voxmill.errors import ConfigError, Reason
from voxmill.prepare import PrepareOptions, parse_source, run

ray = pytest.importorskip("ray")
VOXMILL = Path(sys.executable).with_name("voxmill")
# Loopback only, throw-away clusters: no token files in the user's home.
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)
    if ray.is_initialized():
        ray.shutdown()
    from voxmill.engine.backends.ray import connect

    connect(None, 2)
    yield
    ray.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _runs(log: Path) -> Counter[str]:
    return Counter(line.split()[0] for line in log.read_text().splitlines()) if log.exists() else Counter()


def test_results_in_order_with_drops_and_failures() -> None:
    items = [*range(30), "drop", "fail", 7]
    outcomes = Pool(workers=2, backend="ray", progress=False).map(tasks.Square(), items)
    assert [o.index for o in outcomes] == list(range(len(items)))
    assert [o.value for o in outcomes[:30]] == [i * i for i in range(30)]
    assert isinstance(outcomes[30].result, Dropped)
    assert isinstance(outcomes[31].result, Failed) and "asked to fail" in outcomes[31].result.message
    assert outcomes[32].value == 49


def test_unordered_results_come_as_they_finish() -> None:
    outcomes = list(
        Pool(workers=2, backend="ray", progress=False).imap(tasks.Square(delay={0: 1.5}), range(6), ordered=False)
    )
    assert outcomes[0].index != 0  # item 0 (slow) does not hold back those that finished before it
    assert sorted(o.value for o in outcomes) == [i * i for i in range(6)]


def test_auto_workers_fill_the_cluster() -> None:
    assert Pool(backend="ray").plan_for(100).workers == 2


def test_actor_killed_mid_run_still_gives_every_item(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    task = tasks.Square(delay=dict.fromkeys(range(16), 0.2), log=str(log))
    killed: list[str] = []

    def kill_one() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not killed:
            if log.exists() and len(log.read_text().splitlines()) >= 4:
                names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
                workers = [n for n in names if n.startswith("voxmill-worker-")]
                if workers:
                    ray.kill(ray.get_actor(workers[0]), no_restart=True)
                    killed.append(workers[0])
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one)
    killer.start()
    outcomes = Pool(workers=2, backend="ray", progress=False).map(task, range(16))
    killer.join()
    assert killed, "no actor was killed"
    assert [o.value for o in outcomes] == [i * i for i in range(16)]
    assert all(isinstance(o.result, Ok) for o in outcomes)
    runs = _runs(log)
    assert set(runs) == {str(i) for i in range(16)}
    assert sum(runs.values()) - 16 <= 2  # only what the killed actor held ran twice


def test_item_that_always_kills_its_actor_fails_after_one_retry(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    outcomes = Pool(workers=2, backend="ray", progress=False).map(tasks.KillOnce(victim=3, log=str(log)), range(8))
    failed = outcomes[3].result
    assert isinstance(failed, Failed) and failed.code is Reason.WORKER_DIED and "after 1 retry" in failed.message
    assert [o.value for i, o in enumerate(outcomes) if i != 3] == [i + 1000 for i in range(8) if i != 3]
    assert _runs(log)["3"] == 2


def test_short_items_go_in_batches_and_a_dead_batch_retries_each_item_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voxmill.engine.backends.ray import RayBackend

    sizes: list[int] = []
    next_batch = RayBackend._next_batch

    def spy(self: RayBackend, size: int) -> list:  # type: ignore[type-arg]
        batch = next_batch(self, size)
        sizes.append(len(batch))
        return batch

    monkeypatch.setattr(RayBackend, "_next_batch", spy)
    log = tmp_path / "runs.log"
    pool = Pool(workers=2, backend="ray", window=64, progress=False)
    outcomes = pool.map(tasks.KillOnce(victim=150, log=str(log)), range(200))  # 20 ms items: 2 per call
    assert max(sizes) > 1
    failed = outcomes[150].result
    assert isinstance(failed, Failed) and failed.error == "WorkerDied"
    assert [o.value for i, o in enumerate(outcomes) if i != 150] == [i + 1000 for i in range(200) if i != 150]
    assert _runs(log)["150"] == 2  # in its batch, then alone


def test_setup_failure_fails_every_item_with_the_reason() -> None:
    outcomes = Pool(workers=2, backend="ray", progress=False).map(tasks.BrokenSetup(), range(3))
    assert all(isinstance(o.result, Failed) and "model file missing" in o.result.message for o in outcomes)


def test_actors_that_die_in_setup_fail_the_items_instead_of_respawning_forever() -> None:
    start = time.monotonic()
    outcomes = Pool(workers=2, backend="ray", progress=False).map(tasks.DieInSetup(), range(4))
    assert time.monotonic() - start < 60
    assert all(isinstance(o.result, Failed) and "before they start" in o.result.message for o in outcomes)


def test_timeout_fails_the_item_and_replaces_the_actor() -> None:
    outcomes = Pool(workers=2, backend="ray", progress=False).map(tasks.Square(delay={2: 30.0}), range(6), timeout=2.0)
    failed = outcomes[2].result
    assert isinstance(failed, Failed) and failed.code is Reason.TIMEOUT
    assert [o.value for i, o in enumerate(outcomes) if i != 2] == [i * i for i in range(6) if i != 2]


def test_plain_functions_run_on_actors() -> None:
    pool = Pool(workers=2, backend="ray", progress=False)
    assert [o.value for o in pool.map(functools.partial(tasks.scaled, 3), range(5))] == [3 * i for i in range(5)]
    assert pool.plan is not None and pool.plan.describe() == "2 ray workers x 1 thread"


def _shared_files() -> set[Path]:
    """voxmill's files in /dev/shm but those of other live processes (other test runs on this machine):
    this process's, its descendants' (Ray's workers) and those of processes gone (killed actors)."""
    ours = {os.getpid(), *(child.pid for child in psutil.Process().children(recursive=True))}
    files = set(Path("/dev/shm").glob("voxmill-*")) if Path("/dev/shm").is_dir() else set()
    return {f for f in files if int(f.name.split("-")[1]) in ours or not psutil.pid_exists(int(f.name.split("-")[1]))}


def test_arrays_travel_through_the_object_store_not_dev_shm() -> None:
    before = _shared_files()
    arrays = [np.full(300_000, i, np.float32) for i in range(4)]
    pool = Pool(workers=2, backend="ray", progress=False)
    outcomes = pool.map(tasks.Louder(), (share(a) for a in arrays))  # shared inside the run: inline
    for i, outcome in enumerate(outcomes):
        assert outcome.value.path == ""
        np.testing.assert_array_equal(outcome.value.take(), np.full(300_000, 2 * i, np.float32))
    assert _shared_files() <= before
    assert share(arrays[0]).path != ""  # outside a Ray run, arrays go by file again


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from voxmill.engine.backends import ray as ray_backend
    from voxmill.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra sees
    with pytest.raises(MissingExtraError, match=r"voxmill\[ray\]") as raised:
        ray_backend.connect(None, 1)
    assert raised.value.extra == "ray"


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".voxmill" not in p.parts
    }


def test_prepare_on_ray_is_byte_identical_to_processes(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "dataset"  # the same OUT for both runs: it is named in the outputs
    digests = []
    for backend in ("process", "ray"):
        shutil.rmtree(out, ignore_errors=True)
        opts = PrepareOptions([parse_source(str(corpus))], out, formats=["piper", "hf", "nemo"], val_size=2, seed=7,
                              run=RunOptions(workers=2, backend=backend, progress=False))  # fmt: skip
        result = run(opts)
        assert result.counts.get("ok") == 12
        assert result.plan is not None and result.plan.backend == backend
        digests.append(_digest(out))
    assert digests[0] == digests[1]
    assert any(name.startswith("hf/") for name in digests[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop_cluster(starters: list[subprocess.Popen[bytes]], temp: str) -> None:
    # `ray stop` would stop every Ray on the machine; kill only this cluster's processes: the starters'
    # descendants (the agents retitle themselves "ray::DashboardAgent", losing their command line)
    # and anything with its temp dirs on the command line. SIGKILL: `ray start --block` ignores
    # SIGTERM for long seconds.
    doomed: list[psutil.Process] = []
    for starter in starters:
        with contextlib.suppress(psutil.Error):
            doomed += psutil.Process(starter.pid).children(recursive=True)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(temp in part for part in proc.info["cmdline"] or []):
                doomed.append(proc)
    for proc in doomed:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    for starter in starters:
        starter.kill()
        starter.wait(10)


@pytest.mark.slow
def test_prepare_on_a_two_node_cluster(tmp_path: Path, corpus: Path) -> None:
    ray.shutdown()  # this test's voxmill joins the cluster from its own process
    temp = tempfile.mkdtemp(prefix="vxray")  # short: Ray's socket paths must fit in 107 bytes
    port = _free_port()
    env = {**os.environ, **RAY_ENV}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    starters = []
    try:
        head = [ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "1", "--temp-dir", f"{temp}/head",
                "--include-dashboard", "false", "--block"]  # fmt: skip
        starters.append(subprocess.Popen(head, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while subprocess.run([ray_cli, "status", "--address", address], env=env, capture_output=True).returncode:
            assert time.monotonic() < deadline, "the head node did not start"
            time.sleep(1)
        node = [ray_cli, "start", "--address", address, "--num-cpus", "1", "--temp-dir", f"{temp}/node", "--block"]
        starters.append(subprocess.Popen(node, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        probe = f"import ray; ray.init(address={address!r}, logging_level='ERROR'); print(len(ray.nodes()))"
        while (
            subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True).stdout.strip() != "2"
        ):
            assert time.monotonic() < deadline, "the second node did not join"
            time.sleep(1)

        out = tmp_path / "dataset"
        digests = []
        for extra in (["--backend", "process"], ["--ray-address", address]):
            shutil.rmtree(out, ignore_errors=True)
            command = [str(VOXMILL), "-q", "prepare", str(corpus), "-o", str(out), "-f", "piper", "-f", "hf", *extra]
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr[-2000:]
            digests.append(_digest(out))
        assert digests[0] == digests[1]
    finally:
        _stop_cluster(starters, temp)
        shutil.rmtree(temp, ignore_errors=True)


def test_an_unreachable_cluster_is_a_config_error_in_seconds() -> None:
    # Ray itself retries an unreachable head for minutes; voxmill asks the port once first.
    from voxmill.engine.backends import ray as ray_backend

    with socket.socket() as sock:  # a port nothing listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        start = time.monotonic()
        for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
            with pytest.raises(ConfigError, match="cannot reach a Ray cluster"):
                ray_backend._probe(address)
    assert time.monotonic() - start < 10
    ray_backend._probe("auto")  # Ray's to find: no probe
