"""GET /api/layers/{layer}/verification and the verification gauges, over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx

from ingest.pipeline import ingest_file
from tests.conftest import T0, minutes
from tests.fixtures.storms import write_step
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Store


def test_verification_from_nothing_to_scores_surviving_a_restart(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    server = live_server_for(store.storage.url)
    url = f"{server.url}/api/layers/reflectivity/verification"

    empty = httpx.get(url)
    assert empty.status_code == 200
    doc = empty.json()
    assert doc["cases"] == 0 and doc["updated"] is None and doc["window"] == {"hours": 6.0, "start": None, "end": None}
    assert doc["message"].startswith("No nowcast has been verified yet")
    assert [lead["lead_minutes"] for lead in doc["leads"]] == list(range(5, 61, 5))
    assert doc["leads"][0]["thresholds"][0] == {"threshold": 20.0, "hits": 0, "misses": 0, "false_alarms": 0,
                                                "correct_negatives": 0, "csi": None, "pod": None, "far": None}
    assert "wxtiles_nowcast_csi{" not in httpx.get(f"{server.url}/metrics").text

    for step in range(4):
        ingest_file(store, write_step(tmp_path, step), LAYERS["reflectivity"], time=T0 + minutes(5 * step))
    doc = httpx.get(url).json()
    assert "message" not in doc
    assert doc["cases"] == 3 and doc["observations"] == 2  # 10 min: +5; 15 min: +5 and +10
    assert doc["window"]["end"] == "2026-11-27T21:15:00Z" and doc["window"]["start"] == "2026-11-27T15:15:00Z"
    five = doc["leads"][0]
    assert five["cases"] == 2 and all(t["csi"] > 0.85 and t["pod"] > 0.85 and t["far"] < 0.15 for t in five["thresholds"])
    metrics = httpx.get(f"{server.url}/metrics").text
    assert f'wxtiles_nowcast_csi{{layer="reflectivity",lead_minutes="5",threshold="20"}} {five["thresholds"][0]["csi"]}' in metrics
    assert 'wxtiles_nowcast_verified_cases{layer="reflectivity",lead_minutes="10"} 1.0' in metrics
    assert 'lead_minutes="15",threshold="20"' not in metrics  # nothing scored at +15: no gauge, rather than a false 0

    server.__exit__(None, None, None)
    again = live_server_for(store.storage.url)
    assert httpx.get(f"{again.url}/api/layers/reflectivity/verification").json() == doc


def test_layers_without_nowcasts_and_unknown_layers_are_json_404s(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    server = live_server_for(str(tmp_path))
    for layer in ("temperature-2m", "reflectivity-model", "nope"):
        response = httpx.get(f"{server.url}/api/layers/{layer}/verification")
        assert response.status_code == 404 and response.headers["content-type"] == "application/json"
        assert layer in response.json()["error"]
    assert "no nowcasts to verify" in httpx.get(f"{server.url}/api/layers/temperature-2m/verification").json()["error"]


def test_window_setting_and_unreadable_record(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    store.storage.write_bytes("verification/precip-rate.json", b"{not json")
    server = live_server_for(store.storage.url, verification_hours=1.5)
    assert httpx.get(f"{server.url}/api/layers/reflectivity/verification").json()["window"]["hours"] == 1.5
    broken = httpx.get(f"{server.url}/api/layers/precip-rate/verification")
    assert broken.status_code == 503 and "cannot be read" in broken.json()["error"]
