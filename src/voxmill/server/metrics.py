"""``GET /metrics`` in Prometheus' text format, from a registry of this app's own (two apps in one process,
as in the tests, do not share counts).

Requests are counted by a pure ASGI middleware, per method, route template, model and status, and timed
until the last byte of the body is sent: a streamed speech response counts to its end (a middleware
built on Starlette's ``BaseHTTPMiddleware`` would stop the clock when the headers go out). The route
label is the template (``/v1/models/{model_id}``), never the raw path, and ``unmatched`` for unknown
paths, so a fuzzer cannot grow the label set. Queue depth, loaded models and memory are read when
scraped (a collector), not kept up to date on every change.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from voxmill.models.monitor import gpu_share
from voxmill.server.auth import require_api
from voxmill.server.catalog import SERVED_KINDS
from voxmill.server.state import ServerState

__all__ = ["Metrics", "RequestMetrics", "install_metrics", "route_label"]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
MAX_MODEL_LABELS = 500  # routes label with resolved names only; this caps a route that would not
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def route_label(routes: Iterable[BaseRoute], scope: Scope) -> str:
    """The template of the app's own route (a mount: its prefix) that matches ``scope``, or ``unmatched``.

    For what FastAPI's included routers serve, the middleware reads the route FastAPI leaves in
    ``scope["route"]`` once it has routed the request. A wrong method still labels with the route.
    """
    probe = dict(scope)  # matching must not leave anything in the request's own scope
    partial = None
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str) or not path:
            continue  # FastAPI's included routers: their routes set scope["route"] when they serve
        match, _ = route.matches(probe)
        if match is Match.FULL:
            return path
        if match is Match.PARTIAL and partial is None:
            partial = path
    return partial or UNMATCHED


class Metrics:
    """This app's metrics. Routes report audio through ``state.record_audio`` -> :meth:`audio_seconds`."""

    def __init__(self, state: ServerState) -> None:
        self.registry = CollectorRegistry()
        labels = ("method", "route", "model", "status")
        self.requests = Counter("voxmill_requests", "HTTP requests by route template, model and status code",
                                labels, registry=self.registry)  # fmt: skip
        self.durations = Histogram("voxmill_request_duration_seconds",
                                   "Time from request to the last byte of the response body",
                                   labels, buckets=DURATION_BUCKETS, registry=self.registry)  # fmt: skip
        self.in_progress = Gauge("voxmill_requests_in_progress", "HTTP requests being served now",
                                 registry=self.registry)  # fmt: skip
        self.audio = Counter("voxmill_audio_seconds", "Seconds of audio produced (speech) or consumed "
                             "(transcription), per model", ("model", "kind"), registry=self.registry)  # fmt: skip
        self.model_events = Counter("voxmill_model_events", "Model loads, unloads and evictions",
                                    ("event",), registry=self.registry)  # fmt: skip
        self._models: set[str] = set()
        self.registry.register(StateCollector(state))
        for event in ("load", "unload", "evict"):
            state.manager.on(event, lambda name, _info: self.model_events.labels(name).inc())

    def _model(self, model: Any) -> str:
        name = model if isinstance(model, str) else ""
        if name and name not in self._models:
            if len(self._models) >= MAX_MODEL_LABELS or len(name) > 200:
                return "other"
            self._models.add(name)
        return name

    def audio_seconds(self, model: str, seconds: float) -> None:
        """Count ``seconds`` of audio made or read by ``model`` (its kind is the name's prefix)."""
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
            return
        name = self._model(model)
        kind = name.partition(":")[0] if ":" in name else name
        self.audio.labels(name, kind).inc(seconds)

    def observe(self, method: str, route: str, model: Any, status: int, seconds: float) -> None:
        labels = (method, route, self._model(model), str(status))
        self.requests.labels(*labels).inc()
        self.durations.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class StateCollector(Collector):
    """Read at scrape time: the scheduler's queue, the manager's models and budget, the monitor's memory."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration; collect() reads live objects

    def collect(self) -> Iterator[Metric]:
        yield from self._queue()
        yield from self._models()
        yield from self._memory()

    def _queue(self) -> Iterator[Metric]:
        scheduler = self.state.scheduler
        yield GaugeMetricFamily("voxmill_queue_jobs_waiting", "Model jobs waiting for a worker", scheduler.queued)
        yield GaugeMetricFamily("voxmill_queue_jobs_running", "Model jobs running on a worker", scheduler.running)
        admitted = GaugeMetricFamily("voxmill_queue_requests", "Requests admitted (waiting or running) per kind",
                                     labels=["kind"])  # fmt: skip
        for kind in SERVED_KINDS:
            admitted.add_metric([kind], scheduler.admitted(kind))
        yield admitted
        yield GaugeMetricFamily("voxmill_queue_limit", "Requests admitted per kind before 503", scheduler.max_queue)

    def _models(self) -> Iterator[Metric]:
        manager = self.state.manager
        rows = manager.status()
        loaded = GaugeMetricFamily("voxmill_models_loaded", "Models loaded (or loading)", labels=["kind", "device"])
        counts: dict[tuple[str, str], int] = {}
        for row in rows:
            counts[row.kind, row.device] = counts.get((row.kind, row.device), 0) + 1
        for (kind, device), count in sorted(counts.items()):
            loaded.add_metric([kind, device], count)
        yield loaded
        size = GaugeMetricFamily("voxmill_model_bytes", "Bytes accounted to each loaded model",
                                 labels=["model", "kind", "device"])  # fmt: skip
        refs = GaugeMetricFamily("voxmill_model_refs", "Requests holding each loaded model", labels=["model"])
        for row in rows:
            size.add_metric([row.name, row.kind, row.device], max(row.estimated_bytes, row.measured_bytes or 0))
            refs.add_metric([row.name], row.refs)
        yield size
        yield refs
        budget = GaugeMetricFamily("voxmill_model_budget_bytes", "The model manager's budget", labels=["memory"])
        used = GaugeMetricFamily("voxmill_model_budget_used_bytes", "Bytes of the budget held by models",
                                 labels=["memory"])  # fmt: skip
        budget.add_metric(["ram"], manager.budget_bytes)
        used.add_metric(["ram"], manager.used_bytes(gpu=False))
        if manager.gpu_budget_bytes is not None:
            budget.add_metric(["gpu"], manager.gpu_budget_bytes)
        used.add_metric(["gpu"], manager.used_bytes(gpu=True))
        yield budget
        yield used

    def _memory(self) -> Iterator[Metric]:
        sample = self.state.monitor.latest()
        yield GaugeMetricFamily("voxmill_ram_used_ratio", "Share of system RAM in use", sample.ram_used_fraction)
        yield GaugeMetricFamily("voxmill_ram_available_bytes", "System RAM available", sample.ram_available_bytes)
        yield GaugeMetricFamily("voxmill_ram_total_bytes", "System RAM", sample.ram_total_bytes)
        yield GaugeMetricFamily("voxmill_process_rss_bytes", "Resident memory of the server", sample.process_rss_bytes)
        used = GaugeMetricFamily("voxmill_gpu_memory_used_bytes", "GPU memory in use", labels=["gpu", "name"])
        total = GaugeMetricFamily("voxmill_gpu_memory_total_bytes", "GPU memory", labels=["gpu", "name"])
        share = GaugeMetricFamily("voxmill_gpu_memory_used_ratio", "Share of GPU memory in use", labels=["gpu"])
        busy = GaugeMetricFamily("voxmill_gpu_utilization_ratio", "Share of time the GPU was busy (NVML)",
                                 labels=["gpu"])  # fmt: skip
        for gpu in sample.gpus:
            index = str(gpu.index)
            used.add_metric([index, gpu.name], gpu.used_bytes)
            total.add_metric([index, gpu.name], gpu.total_bytes)
            share.add_metric([index], gpu_share(gpu))
            if gpu.utilization is not None:
                busy.add_metric([index], gpu.utilization / 100)
        yield from (used, total, share, busy)


class RequestMetrics:
    """Pure ASGI middleware: counts and times every HTTP request to the end of its response body."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: FastAPI) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the app, read at each request: routes added later (the UI's mount) count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        before = route_label(self.routes.router.routes, scope)  # routing below may rewrite path/root_path
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        state = scope.setdefault("state", {})  # the dict request.state writes to (routes set .model)
        status = 0  # until a response starts
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = status or 500  # answered 500 outside
            raise
        finally:
            # No response and no error: the client left first (cancelled), as nginx counts it, 499.
            status = status or 499
            self.metrics.in_progress.dec()
            model = state.get("model", "") if isinstance(state, dict) else ""
            served = getattr(scope.get("route"), "path", None)
            route = served if isinstance(served, str) and served else before
            self.metrics.observe(method, route, model, status, time.perf_counter() - started)


def install_metrics(app: FastAPI, state: ServerState) -> None:
    """Count requests (a middleware outside every other), set ``state.metrics``, serve ``GET /metrics``."""
    metrics = Metrics(state)
    state.metrics = metrics
    app.add_middleware(RequestMetrics, metrics=metrics, routes=app)

    def scrape() -> Response:  # a sync route: FastAPI runs it on a thread (it may take a memory sample)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", scrape, methods=["GET"], include_in_schema=False, dependencies=[Depends(require_api)])
