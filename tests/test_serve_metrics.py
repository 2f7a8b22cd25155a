"""``GET /metrics`` over a real server: Prometheus text that parses, the families the issue names, route
templates (never raw paths) as labels, durations to the end of a streamed body, a registry per app."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
from fastapi.responses import StreamingResponse
from prometheus_client.parser import text_string_to_metric_families
from tests.serving import make_settings, running, served

from voxmill.server import build_manager, create_app

VOICE = "piper:en_US-joe-medium"

FAMILIES = {
    "voxmill_requests": "counter",
    "voxmill_request_duration_seconds": "histogram",
    "voxmill_requests_in_progress": "gauge",
    "voxmill_audio_seconds": "counter",
    "voxmill_model_events": "counter",
    "voxmill_queue_jobs_waiting": "gauge",
    "voxmill_queue_jobs_running": "gauge",
    "voxmill_queue_requests": "gauge",
    "voxmill_models_loaded": "gauge",
    "voxmill_model_bytes": "gauge",
    "voxmill_model_refs": "gauge",
    "voxmill_model_budget_bytes": "gauge",
    "voxmill_ram_used_ratio": "gauge",
    "voxmill_ram_available_bytes": "gauge",
    "voxmill_process_rss_bytes": "gauge",
    "voxmill_gpu_memory_used_bytes": "gauge",
    "voxmill_gpu_utilization_ratio": "gauge",
}


def _scrape(client: httpx.Client) -> dict[str, list]:
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(reply.text)}
    for name, kind in FAMILIES.items():
        assert name in families and families[name].type == kind, name
    return {name: family.samples for name, family in families.items()}


def _value(samples: list, sample_name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == sample_name and labels.items() <= s.labels.items())


def test_metrics_parse_and_label_by_route_template_and_model() -> None:
    with served(make_settings()) as (url, _), httpx.Client(base_url=url, timeout=120) as client:
        assert client.post("/api/load", json={"model": "en_US-joe-medium"}).status_code == 200
        client.get(f"/v1/models/{VOICE}")
        client.get("/v1/models/no-such-model")
        for _ in range(40):  # a fuzzer's paths must not become label values
            client.get(f"/fuzz/{uuid.uuid4()}")
            client.post(f"/v2/repository/models/{uuid.uuid4()}/load")
        client.request("PURGE", "/v1/models")
        samples = _scrape(client)
        requests = samples["voxmill_requests"]
        routes = {s.labels["route"] for s in requests}
        assert routes <= {"/api/load", "/v1/models/{model_id}", "unmatched", "/metrics", "/v1/models",
                          "/v2/repository/models/{model_name}/load"}, routes  # fmt: skip
        assert _value(requests, "voxmill_requests_total", route="unmatched", status="404") == 40
        assert _value(requests, "voxmill_requests_total", route="/v2/repository/models/{model_name}/load",
                      status="404") == 40  # fmt: skip
        assert _value(requests, "voxmill_requests_total", route="/api/load", model=VOICE, status="200") == 1
        assert _value(requests, "voxmill_requests_total", route="/v1/models/{model_id}", status="404") == 1
        assert {s.labels["method"] for s in requests} <= {"GET", "POST", "OTHER"}
        durations = samples["voxmill_request_duration_seconds"]
        assert _value(durations, "voxmill_request_duration_seconds_count", route="/api/load") == 1
        assert _value(durations, "voxmill_request_duration_seconds_sum", route="/api/load") > 0
        assert _value(samples["voxmill_model_bytes"], "voxmill_model_bytes", model=VOICE) > 10 * 2**20
        assert _value(samples["voxmill_models_loaded"], "voxmill_models_loaded", kind="piper") == 1
        assert _value(samples["voxmill_model_events"], "voxmill_model_events_total", event="load") == 1
        assert _value(samples["voxmill_queue_requests"], "voxmill_queue_requests", kind="piper") == 0
        assert _value(samples["voxmill_process_rss_bytes"], "voxmill_process_rss_bytes") > 10 * 2**20
        assert 0 < _value(samples["voxmill_ram_used_ratio"], "voxmill_ram_used_ratio") < 1


def test_audio_seconds_are_counted_per_model() -> None:
    with served(make_settings()) as (url, app), httpx.Client(base_url=url, timeout=120) as client:
        state = app.state.voxmill
        state.record_audio("whisper:tiny.en", 2.5)
        state.record_audio("whisper:tiny.en", float("nan"))  # ignored, as is anything not a positive number
        speech = client.post("/v1/audio/speech", json={"model": "tts-1", "voice": "alloy", "response_format": "pcm",
                                                       "input": "Counting the seconds of this sentence."})  # fmt: skip
        audio = _scrape(client)["voxmill_audio_seconds"]
        assert _value(audio, "voxmill_audio_seconds_total", model="whisper:tiny.en", kind="whisper") == 2.5
        if speech.status_code == 200:  # PCM at 22050 Hz, 16-bit mono; the pauses between pieces may not count
            made = _value(audio, "voxmill_audio_seconds_total", model=VOICE, kind="piper")
            assert 0.5 < made <= len(speech.content) / 2 / 22050 + 0.05


def test_a_streamed_body_is_timed_to_its_last_byte() -> None:
    settings = make_settings()
    manager = build_manager(settings)
    app = create_app(settings, manager, ui=False)

    async def slow() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(2.0)
        yield b"last"

    app.add_api_route("/test/stream", lambda: StreamingResponse(slow()), methods=["GET"])
    try:
        with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            started = time.perf_counter()
            with client.stream("GET", "/test/stream") as reply:
                first = time.perf_counter() - started
                body = b"".join(reply.iter_bytes())
            assert body == b"firstlast" and first < 1.5  # the first part came before the pause
            samples = _scrape(client)["voxmill_request_duration_seconds"]
            assert _value(samples, "voxmill_request_duration_seconds_sum", route="/test/stream") >= 2.0
            assert _value(samples, "voxmill_request_duration_seconds_bucket", route="/test/stream", le="0.5") == 0
    finally:
        manager.close()


def test_each_app_counts_its_own_requests() -> None:
    with served(make_settings()) as (one, _), served(make_settings()) as (two, _):
        with httpx.Client(base_url=one) as client:
            for _ in range(3):
                client.get("/healthz")
        with httpx.Client(base_url=two) as client:
            client.get("/healthz")
            samples = _scrape(client)["voxmill_requests"]
        assert _value(samples, "voxmill_requests_total", route="/healthz") == 1
