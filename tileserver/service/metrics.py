"""Metrics (Prometheus) and one-JSON-object-per-line request logs.

One ASGI middleware times every request, gives it a request id (an incoming
``X-Request-ID`` is kept, so ids follow a request through Traefik), records the
latency histogram by route template, and logs a JSON line. Store-derived gauges
(age of the newest frame, ingest duration) are computed at scrape time from the
catalogs, so every stateless replica reports the same truth.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

Scope = MutableMapping[str, Any]
log = logging.getLogger("wxtiles.access")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The server's metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "wxtiles_request_duration_seconds", "HTTP request latency by route and status class",
            ["route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.tile_cache = Counter("wxtiles_tile_cache_total", "Tile cache lookups", ["result"], registry=self.registry)
        self.tile_bytes = Counter("wxtiles_tile_bytes_total", "Bytes of tiles sent, by cache result", ["result"], registry=self.registry)
        self.store_errors = Counter("wxtiles_store_errors_total", "Store failures seen while serving", ["kind"], registry=self.registry)
        self.store_up = Gauge("wxtiles_store_up", "1 while the store answers, 0 while it is down or not yet reached", registry=self.registry)
        self.render_megapixels = Gauge(
            "wxtiles_render_budget_in_use_megapixels", "Megapixels of loops being rendered now (WXTILES_RENDER_BUDGET_MP)",
            registry=self.registry,
        )
        self.renders_refused = Counter(
            "wxtiles_renders_refused_total", "Loops answered 503 because the render budget stayed spent", registry=self.registry,
        )
        # Looking a labelled child up costs a lock and a tuple per call: keep the children.
        self._tile_counters = {result: (self.tile_cache.labels(result), self.tile_bytes.labels(result)) for result in ("hit", "miss")}
        self._latency: dict[tuple[str, str], Any] = {}

    def count_tile(self, result: str, size: int) -> None:
        lookups, sent = self._tile_counters[result]
        lookups.inc()
        sent.inc(size)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        key = (route, f"{status // 100}xx")
        child = self._latency.get(key)
        if child is None:
            child = self._latency.setdefault(key, self.requests.labels(*key))
        child.observe(seconds)


class CatalogCollector:
    """Per-layer gauges from the catalogs: newest frame age, its ingest duration, frame count."""

    def __init__(self, catalogs: Callable[[], dict[str, Any]]) -> None:
        self.catalogs = catalogs

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age = GaugeMetricFamily("wxtiles_latest_frame_age_seconds", "Seconds since the valid time of the newest frame", labels=["layer"])
        frames = GaugeMetricFamily("wxtiles_frames", "Frames listed in the catalog", labels=["layer"])
        ingest = GaugeMetricFamily("wxtiles_ingest_duration_seconds", "How long the newest frame took to ingest", labels=["layer"])
        now = time.time()
        for layer_id, catalog in self.catalogs().items():
            frames.add_metric([layer_id], len(catalog.frames))
            if catalog.frames:
                newest = catalog.frames[-1]
                age.add_metric([layer_id], now - newest.time.timestamp())
                if newest.ingest_seconds is not None:
                    ingest.add_metric([layer_id], newest.ingest_seconds)
        yield age
        yield frames
        yield ingest


class VerificationCollector:
    """Per layer, lead and threshold: CSI, POD and FAR of the nowcasts over the verification window.

    From the stored verification records, so every replica reports the same.
    Leads and thresholds with nothing scored yet are left out, not reported as 0.
    """

    SCORES = (("csi", "critical success index"), ("pod", "probability of detection"), ("far", "false alarm ratio"))

    def __init__(self, summaries: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self.summaries = summaries

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = {
            name: GaugeMetricFamily(f"wxtiles_nowcast_{name}", f"Nowcast {text} over the verification window, by lead and event threshold",
                                    labels=["layer", "lead_minutes", "threshold"])
            for name, text in self.SCORES
        }
        cases = GaugeMetricFamily("wxtiles_nowcast_verified_cases", "Nowcasts scored in the verification window, by lead",
                                  labels=["layer", "lead_minutes"])
        for layer_id, summary in sorted(self.summaries().items()):
            for lead in summary["leads"]:
                minutes = str(lead["lead_minutes"])
                cases.add_metric([layer_id, minutes], lead["cases"])
                for row in lead["thresholds"]:
                    for name in gauges:
                        if row[name] is not None:
                            gauges[name].add_metric([layer_id, minutes, f"{row['threshold']:g}"], row[name])
        yield from gauges.values()
        yield cases


class AccessLog:
    """Request log lines, handed to logging in batches: one record and one write per batch.

    One record per request (a LogRecord, the handler's lock, a write and a flush)
    cost a fifth of a cached tile's time; batches of the lines of up to
    ``FLUSH_S`` seconds keep every line, each its own JSON object. Used from the
    event loop only; ``flush`` at shutdown writes what is left.
    """

    FLUSH_S = 0.05
    MAX_LINES = 1000

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._scheduled = False

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= self.MAX_LINES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.FLUSH_S, self._flush_later)

    def _flush_later(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            log.info("\n".join(lines))


class RequestLogMiddleware:
    """Times, counts and logs each request; it must sit inside ForwardedHeadersMiddleware,
    which copies the scope, so that it sees the route the router records in it."""

    def __init__(self, app: Callable[..., Awaitable[None]], metrics: Metrics, access_log: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        # Request ids: a random per-process prefix and a counter, unique without a uuid4 per request.
        self._prefix = os.urandom(6).hex()
        self._count = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = next((value for name, value in scope.get("headers") or () if name == b"x-request-id"), b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else f"{self._prefix}{next(self._count):08x}"
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            route = str(getattr(scope.get("route"), "path", "unmatched"))
            self.metrics.observe_request(route, status, duration)
            if log.isEnabledFor(logging.INFO):
                self.access_log.add(json.dumps({
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "request_id": request_id,
                    "method": scope.get("method"), "route": route, "path": scope.get("path"), "status": status,
                    "duration_ms": round(duration * 1000, 2), "client": (scope.get("client") or ["-"])[0],
                }))


class JsonFormatter(logging.Formatter):
    """Every log record as one JSON object per line (access lines are JSON already)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == "wxtiles.access":
            return message
        doc = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)), "level": record.levelname.lower(),
               "logger": record.name, "message": message}
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(doc)


def configure_json_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level != "trace" else "DEBUG")
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # ours is richer, and JSON
