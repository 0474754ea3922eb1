"""Forecast layers over HTTP: valid times, model runs, and their cache rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from ingest.demo import samples
from ingest.pipeline import ingest_file
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Store

RUN_A = datetime(2026, 11, 27, 18, tzinfo=timezone.utc)
RUN_B = RUN_A + timedelta(hours=1)
TILE = "/tiles/temperature-2m/2026-11-27T20:00:00Z/5/7/12.png"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tests.conftest import LiveServer
    from tileserver.core.settings import Settings

    folder = tmp_path_factory.mktemp("forecast")
    store = Store(open_storage(str(folder / "store"), create=True))
    for run, leads in ((RUN_A, (1, 2, 3)), (RUN_B, (0, 1, 2))):
        for lead in leads:
            path = folder / f"hrrr.t{run:%H}z.wrfsfcf{lead:02d}.grib2"
            # Different seeds per run, so the two runs disagree as real runs do.
            samples.write_hrrr_grib2(path, run, timedelta(hours=lead), shape=(200, 300), seed=run.hour)
            ingest_file(store, path, LAYERS["temperature-2m"])
    with LiveServer(Settings(store=str(folder / "store"), catalog_ttl_s=0.0)) as live:
        with httpx.Client(base_url=live.url, timeout=20) as http:
            yield http


def test_metadata_lists_valid_times_and_runs(client: httpx.Client) -> None:
    info = client.get("/api/layers/temperature-2m").json()
    assert info["kind"] == "forecast" and info["units"] == "degC"
    assert info["frames"] == ["2026-11-27T19:00:00Z", "2026-11-27T20:00:00Z", "2026-11-27T21:00:00Z"]
    assert info["runs"] == [
        {"run": "2026-11-27T18:00:00Z", "frames": ["2026-11-27T19:00:00Z", "2026-11-27T20:00:00Z", "2026-11-27T21:00:00Z"]},
        {"run": "2026-11-27T19:00:00Z", "frames": ["2026-11-27T19:00:00Z", "2026-11-27T20:00:00Z", "2026-11-27T21:00:00Z"]},
    ]


def test_valid_time_uses_newest_run_unless_run_given(client: httpx.Client) -> None:
    newest = client.get(TILE)
    explicit_b = client.get(TILE, params={"run": "2026-11-27T19:00:00Z"})
    older = client.get(TILE, params={"run": "2026-11-27T18:00:00Z"})
    assert newest.status_code == explicit_b.status_code == older.status_code == 200
    assert newest.content == explicit_b.content
    assert older.content != newest.content
    # Without run= a newer run can take this URL over: short max-age. With run=, immutable.
    assert newest.headers["cache-control"] == "public, max-age=60"
    assert "immutable" in older.headers["cache-control"]


def test_points_per_run(client: httpx.Client) -> None:
    params = {"lon": -97.5, "lat": 38.5, "time": "2026-11-27T20:00:00Z"}
    newest = client.get("/api/layers/temperature-2m/point", params=params).json()
    older = client.get("/api/layers/temperature-2m/point", params={**params, "run": "2026-11-27T18:00:00Z"}).json()
    assert newest["run"] == "2026-11-27T19:00:00Z" and older["run"] == "2026-11-27T18:00:00Z"
    assert newest["status"] == older["status"] == "ok"
    assert -40 < newest["value"] < 45 and newest["units"] == "degC"


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/tiles/temperature-2m/2026-11-27T22:00:00Z/5/7/12.png", 404),
        (TILE + "?run=2026-11-27T17:00:00Z", 404),
        ("/tiles/temperature-2m/2026-11-27T19:00:00Z/5/7/12.png?run=2026-11-27T19:00:00Z", 200),
        ("/tiles/temperature-2m/latest/5/7/12.png?run=2026-11-27T18:00:00Z", 200),
        ("/tiles/temperature-2m/latest/5/7/12.png?colormap=nws-reflectivity", 400),
        ("/tiles/temperature-2m/latest/5/7/12.png?colormap=viridis", 200),
    ],
)
def test_forecast_tile_status(client: httpx.Client, url: str, status: int) -> None:
    assert client.get(url).status_code == status
