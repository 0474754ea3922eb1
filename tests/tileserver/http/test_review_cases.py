"""Inputs that once broke the rules: bad times, hostile catalogs, broken stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from ingest.errors import IngestError
from ingest.pipeline import ingest_file
from tests.conftest import T0, radar_file, write_latlon_geotiff
from tileserver.core.layers import LAYERS
from tileserver.core.settings import Settings, SettingsError
from tileserver.store.storage import StorageError, open_storage
from tileserver.store import CatalogError, Store, catalog_key
from tileserver.core.timeutil import TimeFormatError, parse_utc, utcnow

RADAR = LAYERS["reflectivity"]


@pytest.mark.parametrize(
    "text",
    ["0999-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2300-01-01T00:00:00Z"],
)
def test_times_outside_the_supported_years_are_refused(text: str) -> None:
    with pytest.raises(TimeFormatError, match="outside the years"):
        parse_utc(text)


def test_fractions_of_a_second_are_dropped() -> None:
    assert parse_utc("2026-11-27T21:00:00.900Z") == T0


def test_sub_second_ingests_are_one_frame(store: Store, tmp_path: Path) -> None:
    plain = write_latlon_geotiff(tmp_path / "a.tif", np.full((50, 60), 20.0, np.float32))
    first = ingest_file(store, plain, RADAR, time=T0 + timedelta(microseconds=100_000))
    again = ingest_file(store, plain, RADAR, time=T0 + timedelta(microseconds=200_000))
    assert first.frame.time == T0 and again.status == "unchanged"
    other = write_latlon_geotiff(tmp_path / "b.tif", np.full((50, 60), 30.0, np.float32))
    with pytest.raises(IngestError, match="immutable"):
        ingest_file(store, other, RADAR, time=T0 + timedelta(microseconds=300_000))
    assert len(store.load_catalog("reflectivity").frames) == 1


def test_future_observation_is_refused_and_prunes_nothing(store: Store, tmp_path: Path) -> None:
    ingest_file(store, radar_file(tmp_path, T0), RADAR)
    with pytest.raises(IngestError, match="in the future"):
        ingest_file(store, radar_file(tmp_path, T0), RADAR, time=utcnow() + timedelta(days=365 * 30))
    assert [f.time for f in store.load_catalog("reflectivity").frames] == [T0]


def test_two_bands_only_for_vector_layers(store: Store, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="vector layer"):
        ingest_file(store, radar_file(tmp_path, T0), RADAR, band=(1, 1))


@pytest.mark.parametrize(
    "body",
    [
        b"null", b"[]", b'"text"', b'{"format": "wxtiles-catalog/1", "frames": {}}',
        b'{"format": "wxtiles-catalog/1", "frames": [{"time": "2026-11-27T21:00:00Z", "key": "../../etc/passwd", "digest": "d", "bounds": [0,0,1,1], "native_zoom": 3, "size": 1, "ingested": "2026-11-27T21:00:00Z"}]}',
        b'{"format": "wxtiles-catalog/1", "frames": [{"time": "2026-11-27T21:00:00Z", "key": "reflectivity/x.tif", "digest": "d", "bounds": [0,0,1], "native_zoom": 3, "size": 1, "ingested": "2026-11-27T21:00:00Z"}]}',
    ],
)
def test_malformed_catalogs_are_catalog_errors_and_502(tmp_path: Path, live_server_for, body: bytes) -> None:  # noqa: ANN001
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    store.storage.write_bytes(catalog_key("reflectivity"), body)
    with pytest.raises(CatalogError):
        store.load_catalog("reflectivity")
    server = live_server_for(str(tmp_path / "store"))
    for url in ("/api/layers", "/api/layers/reflectivity", "/tiles/reflectivity/latest/3/1/2.png"):
        for _ in range(2):  # the second answer comes from knowing these bytes are corrupt
            response = httpx.get(server.url + url)
            assert response.status_code == 502 and "corrupt" in response.json()["error"], (url, response.text)
    # One layer's broken catalog does not take the others out of service.
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["store"]["status"] == "up"
    assert httpx.get(server.url + "/api/layers/precip-rate").status_code == 200


def test_unwritable_store_is_a_clean_error(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    store = Store(open_storage(str(folder), create=True))
    # CI runs as root, which ignores permission bits: block the temp folder with a
    # file instead, which fails for every user like a read-only or full disk does.
    (folder / ".tmp").write_text("not a folder")
    with pytest.raises(IngestError, match=f"cannot create a temporary file .* in {folder}"):
        ingest_file(store, radar_file(tmp_path, T0), RADAR)
    assert store.load_catalog("reflectivity").frames == ()


def test_store_folder_vanishing_is_503_not_empty(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    folder = tmp_path / "store"
    server = live_server_for(str(folder))
    response = httpx.get(server.url + "/api/layers/reflectivity")
    assert response.status_code == 503
    folder.mkdir()
    assert httpx.get(server.url + "/api/layers/reflectivity").status_code == 200


@pytest.mark.parametrize(("name", "value"), [("WXTILES_RETENTION_HOURS", "nan"), ("WXTILES_CACHE_MB", "-1"), ("WXTILES_CATALOG_TTL_S", "inf"), ("WXTILES_LOG_LEVEL", "bogus"), ("WXTILES_VERIFICATION_HOURS", "0")])
def test_bad_settings(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_etags_differ_between_layers_and_ignore_colormap_for_npy(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    grid = np.full((50, 60), 4.0, np.float32)
    source = write_latlon_geotiff(tmp_path / "same.tif", grid, -105.0, 45.0, 0.1)
    ingest_file(store, source, LAYERS["precip-rate"], time=T0)
    ingest_file(store, source, LAYERS["wind-speed-10m"], time=T0, run=T0)
    server = live_server_for(str(tmp_path / "store"))
    rain = httpx.get(server.url + "/tiles/precip-rate/latest/5/6/11.png?colormap=viridis")
    wind = httpx.get(server.url + "/tiles/wind-speed-10m/latest/5/6/11.png?colormap=viridis")
    assert rain.status_code == wind.status_code == 200
    assert rain.headers["etag"] != wind.headers["etag"]
    plain = httpx.get(server.url + "/tiles/precip-rate/latest/5/6/11.npy")
    named = httpx.get(server.url + "/tiles/precip-rate/latest/5/6/11.npy?colormap=viridis")
    assert plain.headers["etag"] == named.headers["etag"] and plain.content == named.content
    star = httpx.get(server.url + "/tiles/precip-rate/latest/5/6/11.png", headers={"If-None-Match": "*"})
    assert star.status_code == 304


def test_legend_with_unknown_layer_is_400(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    server = live_server_for(str(tmp_path))
    response = httpx.get(server.url + "/api/colormaps/viridis/legend.png?layer=nosuch")
    assert response.status_code == 400 and "layer" in response.json()["error"]


def test_lost_file_of_a_listed_frame_is_repaired_by_reingest(store: Store, tmp_path: Path) -> None:
    source = radar_file(tmp_path, T0)
    frame = ingest_file(store, source, RADAR).frame
    store.storage.delete(frame.key)
    assert ingest_file(store, source, RADAR).status == "unchanged"
    assert store.storage.exists(frame.key)


def test_storage_errors_name_the_store(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    storage = open_storage(str(blocker))
    with pytest.raises(StorageError, match="does not exist"):
        storage.check()


def test_request_size_limits(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    server = live_server_for(str(tmp_path))
    long = httpx.get(f"{server.url}/api/layers?x={'a' * 5000}")
    assert long.status_code == 414 and "4096" in long.json()["error"]
    body = httpx.request("GET", f"{server.url}/api/layers", content=b"x" * 100)
    assert body.status_code == 413 and "error" in body.json()
    assert httpx.get(f"{server.url}/healthz").status_code == 200
