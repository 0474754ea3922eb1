"""/metrics in Prometheus format and JSON request logs with request ids."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ingest.pipeline import ingest_file
from tests.conftest import T0, free_port, minutes, radar_file
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Store


def test_metrics_count_requests_cache_and_frames(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    for step in (0, 5):
        ingest_file(store, radar_file(tmp_path, T0 + minutes(step), step), LAYERS["reflectivity"])
    server = live_server_for(store.storage.url)
    tile = f"{server.url}/tiles/reflectivity/latest/4/3/5.png"
    first, second = httpx.get(tile), httpx.get(tile)
    assert first.status_code == second.status_code == 200
    assert httpx.get(f"{server.url}/tiles/reflectivity/latest/30/0/0.png").status_code == 400
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    route = "/tiles/{layer}/{time}/{z}/{x}/{y}"
    assert samples[("wxtiles_request_duration_seconds_count", (("route", route), ("status", "2xx")))] == 2
    assert samples[("wxtiles_request_duration_seconds_count", (("route", route), ("status", "4xx")))] == 1
    assert samples[("wxtiles_tile_cache_total", (("result", "hit"),))] == 1
    assert samples[("wxtiles_tile_cache_total", (("result", "miss"),))] == 1
    assert samples[("wxtiles_tile_bytes_total", (("result", "hit"),))] == len(second.content)
    assert samples[("wxtiles_frames", (("layer", "reflectivity"),))] == 2
    assert samples[("wxtiles_latest_frame_age_seconds", (("layer", "reflectivity"),))] > 0
    assert samples[("wxtiles_ingest_duration_seconds", (("layer", "reflectivity"),))] > 0
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_json_request_logs_from_wxtiles_serve(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "store").mkdir()
    env = {**os.environ, "WXTILES_STORE": str(tmp_path / "store")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(url + "/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        response = httpx.get(url + "/api/layers/nosuch", headers={"X-Request-ID": "trace-42"})
        assert response.status_code == 404 and response.headers["x-request-id"] == "trace-42"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("request_id") == "trace-42"]
    assert access and access[0]["route"] == "/api/layers/{layer}" and access[0]["status"] == 404
    assert access[0]["duration_ms"] >= 0
    assert all(line.startswith("{") for line in output.splitlines() if line.strip()), output
