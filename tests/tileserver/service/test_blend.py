"""The seamless view: HRRR inside its domain, GFS outside, per pixel, from the newest runs."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import httpx
import mercantile
import numpy as np
import pytest

from ingest.demo import samples
from ingest.pipeline import ingest_file
from tests.conftest import T0, LiveServer
from tileserver.core.layers import LAYERS
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Store

RUN = T0 - timedelta(hours=3)
OLD_GFS = RUN - timedelta(hours=6)
VALID = "2026-11-27T19:00:00Z"  # RUN + 1 h


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    folder = tmp_path_factory.mktemp("blend")
    store = Store(open_storage(str(folder / "store"), create=True))
    for lead in (0, 1):
        hrrr = samples.write_hrrr_grib2(folder / f"hrrr.f{lead:02d}.grib2", RUN, timedelta(hours=lead), shape=(150, 240), seed=lead)
        ingest_file(store, hrrr, LAYERS["hrrr-temperature-2m"])
    # GFS: an older run covering VALID too, and the newest run; the newest must win.
    for run, lead in ((OLD_GFS, 7), (RUN, 1), (RUN, 2)):
        gfs = samples.write_gfs_grib2(folder / f"gfs.{run:%H}.f{lead:03d}.grib2", run, timedelta(hours=lead), shape=(181, 360), seed=100 + lead)
        ingest_file(store, gfs, LAYERS["gfs-temperature-2m"])
    with LiveServer(Settings(store=store.storage.url, catalog_ttl_s=0.0)) as live:
        yield live


def point(server: LiveServer, layer: str, lon: float, lat: float, **extra: str) -> dict:
    response = httpx.get(f"{server.url}/api/layers/{layer}/point", params={"lon": lon, "lat": lat, "time": VALID} | extra)
    assert response.status_code == 200, response.text
    return response.json()


def hrrr_edge(server: LiveServer) -> tuple[tuple[float, float], tuple[float, float]]:
    """The last point inside the HRRR domain and the first outside it, walking west along 38 N."""
    lon = -97.0
    assert point(server, "hrrr-temperature-2m", lon, 38.0)["status"] == "ok"
    while point(server, "hrrr-temperature-2m", lon - 0.05, 38.0)["status"] == "ok":
        lon -= 0.05
        assert lon > -140
    return (lon, 38.0), (lon - 0.05, 38.0)


def test_points_just_inside_and_outside_the_hrrr_domain(server: LiveServer) -> None:
    inside, outside = hrrr_edge(server)
    best_in = point(server, "best-temperature-2m", *inside)
    assert best_in["value"] == point(server, "hrrr-temperature-2m", *inside)["value"]
    assert best_in["source"] == {"layer": "hrrr-temperature-2m", "model": "hrrr", "run": "2026-11-27T18:00:00Z"}
    best_out = point(server, "best-temperature-2m", *outside)
    gfs = point(server, "gfs-temperature-2m", *outside)
    assert gfs["run"] == "2026-11-27T18:00:00Z"  # the newest GFS run valid then, not the 12Z one
    assert best_out["value"] == gfs["value"] is not None
    assert best_out["source"]["layer"] == "gfs-temperature-2m"


def test_a_tile_across_the_edge_has_no_hole_and_takes_each_model_on_its_side(server: LiveServer) -> None:
    inside, _ = hrrr_edge(server)
    tile = mercantile.tile(*inside, 6)
    get = lambda layer: np.load(io.BytesIO(httpx.get(f"{server.url}/tiles/{layer}/{VALID}/6/{tile.x}/{tile.y}.npy").content))  # noqa: E731
    best, hrrr, gfs = get("best-temperature-2m"), get("hrrr-temperature-2m"), get("gfs-temperature-2m")
    covered = ~np.isnan(hrrr)
    assert covered.any() and (~covered).any()  # the tile really straddles the edge
    assert not np.isnan(best).any()
    np.testing.assert_array_equal(best[covered], hrrr[covered])
    np.testing.assert_array_equal(best[~covered], gfs[~covered])
    png = httpx.get(f"{server.url}/tiles/best-temperature-2m/{VALID}/6/{tile.x}/{tile.y}.png")
    assert png.status_code == 200 and png.headers["cache-control"].startswith("public, max-age=")


def test_series_takes_the_model_that_covers_the_point(server: LiveServer) -> None:
    inside, outside = hrrr_edge(server)
    for where, source in ((inside, "hrrr-temperature-2m"), (outside, "gfs-temperature-2m")):
        body = httpx.get(f"{server.url}/api/layers/best-temperature-2m/series", params={"lon": where[0], "lat": where[1]}).json()
        at_valid = next(v for v in body["values"] if v["time"] == VALID)
        assert at_valid["layer"] == source and at_valid["value"] == point(server, source, *where)["value"]
    # GFS alone covers 20 Z (RUN + 2 h): the view still has that hour, everywhere, and says whose it is.
    assert [v["time"] for v in body["values"]][-1] == "2026-11-27T20:00:00Z"
    only_gfs = point(server, "best-temperature-2m", *inside, time="2026-11-27T20:00:00Z")
    assert only_gfs["source"]["layer"] == "gfs-temperature-2m" and only_gfs["value"] is not None


def test_metadata_says_which_model_fills_which_area(server: LiveServer) -> None:
    info = httpx.get(f"{server.url}/api/layers/best-temperature-2m").json()
    assert [(b["layer"], b["model"]) for b in info["blend"]] == [("hrrr-temperature-2m", "hrrr"), ("gfs-temperature-2m", "gfs")]
    hrrr_bounds = httpx.get(f"{server.url}/api/layers/hrrr-temperature-2m").json()["bounds"]
    assert info["blend"][0]["bounds"] == hrrr_bounds and info["blend"][1]["newest_run"] == "2026-11-27T18:00:00Z"
    assert "runs" not in info
    assert info["frames"] == sorted(set(info["frames"]))
    assert {"2026-11-27T18:00:00Z", VALID, "2026-11-27T20:00:00Z"} <= set(info["frames"])
    capabilities = httpx.get(f"{server.url}/wmts/1.0.0/WMTSCapabilities.xml").text
    assert "<ows:Identifier>best-temperature-2m</ows:Identifier>" in capabilities
    tilejson = httpx.get(f"{server.url}/tiles/best-temperature-2m/tilejson.json").json()
    assert tilejson["tiles"][0].startswith(f"{server.url}/tiles/best-temperature-2m/")


def test_a_run_cannot_be_asked_of_the_blend(server: LiveServer, tmp_path: Path) -> None:
    response = httpx.get(f"{server.url}/tiles/best-temperature-2m/{VALID}/6/14/24.png", params={"run": "2026-11-27T18:00:00Z"})
    assert response.status_code == 400 and "newest runs" in response.json()["error"]
    from ingest.errors import IngestError

    with pytest.raises(IngestError, match="blended from hrrr-temperature-2m and gfs-temperature-2m"):
        ingest_file(Store(open_storage(str(tmp_path / "s"), create=True)), tmp_path / "any.grib2", LAYERS["best-temperature-2m"])
