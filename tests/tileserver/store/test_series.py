"""Point time series: sidecars written at ingest, values equal to /point, JSON and CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import numpy as np
import pytest

from ingest.pipeline import ingest_file
from tests.conftest import T0, minutes
from tests.fixtures.storms import ingest_steps, write_step
from tileserver.core.layers import LAYERS
from tileserver.store.series import write_sidecar
from tileserver.store.storage import open_storage
from tileserver.store import Store

RADAR = LAYERS["reflectivity"]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tests.conftest import LiveServer
    from tileserver.core.settings import Settings

    folder = tmp_path_factory.mktemp("series")
    store = Store(open_storage(str(folder / "store"), create=True))
    ingest_steps(store, folder, range(4))
    with LiveServer(Settings(store=store.storage.url, catalog_ttl_s=0.0)) as live:
        yield live.url


def test_sidecar_is_written_beside_each_frame(server_url: str) -> None:
    info = httpx.get(f"{server_url}/api/layers/reflectivity").json()
    assert len(info["frames"]) == 4


@pytest.mark.parametrize(("lon", "lat"), [(-105.3, 45.2), (-95.0, 40.0), (-129.9, 40.0), (-100.0, 52.7), (10.0, 50.0)])
def test_series_values_equal_point_values(server_url: str, lon: float, lat: float) -> None:
    series = httpx.get(f"{server_url}/api/layers/reflectivity/series", params={"lon": lon, "lat": lat}).json()
    assert series["units"] == "dBZ"
    observed = [v for v in series["values"] if v["kind"] == "observed"]
    nowcast = [v for v in series["values"] if v["kind"] == "nowcast"]
    assert [v["time"] for v in observed] == [f"2026-11-27T21:{m:02d}:00Z" for m in (0, 5, 10, 15)]
    assert len(nowcast) == 24 and nowcast[0]["lead_minutes"] == 5
    for item in observed + nowcast[:6]:
        point = httpx.get(f"{server_url}/api/layers/reflectivity/point", params={"lon": lon, "lat": lat, "time": item["time"]}).json()
        assert (item["value"], item["status"]) == (point["value"], point["status"]), item


def test_series_window_and_csv(server_url: str) -> None:
    params = {"lon": -105.3, "lat": 45.2, "start": "2026-11-27T21:05:00Z", "end": "2026-11-27T21:30:00Z"}
    body = httpx.get(f"{server_url}/api/layers/reflectivity/series", params=params).json()
    assert [v["time"] for v in body["values"]] == [
        "2026-11-27T21:05:00Z", "2026-11-27T21:10:00Z", "2026-11-27T21:15:00Z", "2026-11-27T21:20:00Z", "2026-11-27T21:25:00Z", "2026-11-27T21:30:00Z",
    ]
    response = httpx.get(f"{server_url}/api/layers/reflectivity/series", params={**params, "format": "csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["time"] for r in rows] == [v["time"] for v in body["values"]]
    assert rows[0].keys() == {"time", "value", "units", "status", "kind", "lead_minutes", "run"}
    assert all(r["units"] == "dBZ" for r in rows)


@pytest.mark.parametrize(
    ("query", "status"),
    [({"lon": -100}, 400), ({"lon": -100, "lat": 40, "format": "xml"}, 400), ({"lon": -100, "lat": 40, "start": "x"}, 400),
     ({"lon": -100, "lat": 40, "start": "2026-11-28T00:00:00Z", "end": "2026-11-27T00:00:00Z"}, 400)],
)
def test_series_errors(server_url: str, query: dict, status: int) -> None:
    response = httpx.get(f"{server_url}/api/layers/reflectivity/series", params=query)
    assert response.status_code == status and "error" in response.json()


def test_sidecar_round_trip(tmp_path: Path) -> None:
    from tileserver.store.series import SeriesGrid, decode_entry, index_range, value_in_chunk

    rng = np.random.default_rng(3)
    codes = np.zeros((300, 200), np.uint16)
    codes[50:120, 30:170] = rng.integers(0, 65535, (70, 140))
    codes[200:, :] = 65535
    path = tmp_path / "s.bin"
    write_sidecar(codes, 65535, path)
    data = path.read_bytes()
    grid = SeriesGrid(0.0, 300.0, 1.0, 200, 300)
    for row, col in [(0, 0), (60, 40), (119, 169), (250, 199), (299, 5), (64, 64)]:
        start, length = index_range(grid, col, row)
        offset, size, fill = decode_entry(data[start : start + length])
        value = fill if size == 0 else value_in_chunk(data[offset : offset + size], "u2", col, row)
        assert value == codes[row, col]
        assert grid.cell(col + 0.5, 300 - row - 0.5) == (col, row)


def test_complete_hours_are_packed_and_answer_the_same(tmp_path: Path) -> None:
    from tileserver.service import TileService
    from tileserver.core.settings import Settings

    store = Store(open_storage(str(tmp_path / "store"), create=True))
    for step in range(14):  # 21:00 .. 22:05: hour 21 is complete once 22:00 arrives
        ingest_file(store, write_step(tmp_path, step % 5), RADAR, time=T0 + minutes(5 * step))
    store.prune("reflectivity")
    catalog = store.load_catalog("reflectivity")
    assert [p.hour for p in catalog.packs] == [T0]
    assert len(catalog.packs[0].times) == 12 and store.storage.exists(catalog.packs[0].key)
    service = TileService(store, Settings(store=store.storage.url))
    for lon, lat in ((-105.3, 45.2), (-95.0, 40.0), (-100.0, 52.7), (-129.9, 40.0)):
        series = service.points.series(RADAR, lon, lat)
        for item in (v for v in series["values"] if v["kind"] == "observed"):
            point = service.points.point(RADAR, lon, lat, __import__("tileserver.core.timeutil", fromlist=["parse_utc"]).parse_utc(item["time"]))
            assert (item["value"], item["status"]) == (point["value"], point["status"]), item
    # Pruning the frames of the packed hour drops its pack too.
    from datetime import timedelta

    store.retention = type(store.retention)(observed=timedelta(minutes=4))
    store.prune("reflectivity")
    catalog = store.load_catalog("reflectivity")
    assert catalog.packs == () and [o for o in store.storage.list("reflectivity/packs/")] == []
