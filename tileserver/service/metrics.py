"""The server's Prometheus metrics.

Store-derived gauges (age of the newest frame, ingest duration, nowcast scores)
are computed at scrape time from the catalogs and verification records, so every
stateless replica reports the same truth. Request latency is recorded by
``tileserver.http.access_log``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, MutableMapping
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
