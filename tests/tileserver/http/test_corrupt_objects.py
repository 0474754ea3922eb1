"""Corrupt objects in the store (sidecar, pack, motion field, catalog) answer 502, never 500.

Each test takes a copy of a store built by real ingests, damages one object in
it as a bad disk or an interrupted copy would, and asks a live server.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path

import httpx
import mercantile
import pytest

from ingest.pipeline import ingest_file
from tests.conftest import T0, minutes
from tests.fixtures.storms import write_step
from tileserver.core.layers import LAYERS
from tileserver.store.series import CHUNK, ENTRY, HEADER, PACK_HEADER, SeriesGrid
from tileserver.store.storage import open_storage
from tileserver.store import Store, catalog_key

RADAR = LAYERS["reflectivity"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """14 frames, 21:00 to 22:05: sidecars, motion fields, and one hour pack (21:00)."""
    folder = tmp_path_factory.mktemp("corrupt")
    store = Store(open_storage(str(folder / "store"), create=True))
    for step in range(14):
        ingest_file(store, write_step(folder, step % 5), RADAR, time=T0 + minutes(5 * step))
    store.prune("reflectivity")
    assert len(store.load_catalog("reflectivity").packs) == 1
    return folder / "store"


@pytest.fixture
def store(pristine: Path, tmp_path: Path) -> Store:
    shutil.copytree(pristine, tmp_path / "store")
    return Store(open_storage(str(tmp_path / "store")))


def busy_point(path: Path, header_size: int, grid: SeriesGrid) -> tuple[float, float]:
    """The lon/lat of a cell whose chunk holds bytes (not a uniform fill)."""
    data = path.read_bytes()
    chunks = math.ceil(grid.height / CHUNK) * math.ceil(grid.width / CHUNK)
    for index in range(chunks):
        _, size, _ = ENTRY.unpack_from(data, header_size + ENTRY.size * index)
        if size:
            row, col = divmod(index, math.ceil(grid.width / CHUNK))
            x = grid.left + (col * CHUNK + CHUNK / 2) * grid.res
            y = grid.top - (row * CHUNK + CHUNK / 2) * grid.res
            return mercantile.lnglat(x, y)
    raise AssertionError("no chunk with data")


def garble_chunks(path: Path, header_size: int, grid: SeriesGrid) -> None:
    """Keep the header and index, overwrite every chunk's compressed bytes."""
    chunks = math.ceil(grid.height / CHUNK) * math.ceil(grid.width / CHUNK)
    data = bytearray(path.read_bytes())
    start = header_size + ENTRY.size * chunks
    data[start:] = (b"\x13\x37garbage" * len(data))[: len(data) - start]
    path.write_bytes(bytes(data))


def assert_502(client: httpx.Client, url: str, caplog: pytest.LogCaptureFixture, key: str) -> None:
    response = client.get(url)
    assert response.status_code == 502, (url, response.status_code, response.text)
    assert "corrupt" in response.json()["error"]
    assert any(key in record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR), key


@pytest.mark.parametrize("damage", ["truncated", "garbled", "bad index"])
def test_corrupt_series_sidecar_is_502(store: Store, live_server_for, caplog: pytest.LogCaptureFixture, damage: str) -> None:  # noqa: ANN001
    newest = store.load_catalog("reflectivity").frames[-1]  # 22:05: its hour is not packed
    assert newest.series and newest.grid
    path = Path(store.storage.gdal_path(newest.series))
    grid = SeriesGrid(*newest.grid)
    lon, lat = busy_point(path, HEADER.size, grid)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: HEADER.size + 3])
    elif damage == "garbled":
        garble_chunks(path, HEADER.size, grid)
    else:  # every index entry names a 4 GB chunk at the end of the file
        chunks = math.ceil(grid.height / CHUNK) * math.ceil(grid.width / CHUNK)
        data = path.read_bytes()
        path.write_bytes(data[: HEADER.size] + ENTRY.pack(len(data), 2**32 - 1, 0) * chunks + data[HEADER.size + ENTRY.size * chunks :])
    server = live_server_for(store.storage.url)
    with httpx.Client(base_url=server.url) as client:
        assert_502(client, f"/api/layers/reflectivity/series?lon={lon}&lat={lat}&start=2026-11-27T22:00:00Z", caplog, newest.series)
        # The other frames, and the tiles of this one, still answer.
        assert client.get(f"/api/layers/reflectivity/series?lon={lon}&lat={lat}&end=2026-11-27T22:00:00Z").status_code == 200
        assert client.get(f"/api/layers/reflectivity/point?lon={lon}&lat={lat}").status_code == 200


def test_corrupt_series_pack_is_502(store: Store, live_server_for, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    pack = store.load_catalog("reflectivity").packs[0]
    path = Path(store.storage.gdal_path(pack.key))
    grid = SeriesGrid(*pack.grid)
    lon, lat = busy_point(path, PACK_HEADER.size, grid)
    garble_chunks(path, PACK_HEADER.size, grid)
    server = live_server_for(store.storage.url)
    with httpx.Client(base_url=server.url) as client:
        assert_502(client, f"/api/layers/reflectivity/series?lon={lon}&lat={lat}&end=2026-11-27T21:55:00Z", caplog, pack.key)
        assert client.get(f"/api/layers/reflectivity/series?lon={lon}&lat={lat}&start=2026-11-27T22:00:00Z").status_code == 200


def test_corrupt_motion_field_is_502(store: Store, live_server_for, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    newest = store.load_catalog("reflectivity").frames[-1]
    assert newest.motion
    Path(store.storage.gdal_path(newest.motion)).write_bytes(b"II*\x00" + b"\x00garbage" * 40)
    tile = mercantile.tile(-100.0, 42.0, 6)
    server = live_server_for(store.storage.url)
    with httpx.Client(base_url=server.url) as client:
        assert_502(client, f"/tiles/reflectivity/2026-11-27T22:20:00Z/{tile.z}/{tile.x}/{tile.y}.png", caplog, newest.motion)
        assert "motion field" in client.get(f"/tiles/reflectivity/2026-11-27T22:20:00Z/{tile.z}/{tile.x}/{tile.y}.png").json()["error"]
        assert client.get(f"/tiles/reflectivity/2026-11-27T22:05:00Z/{tile.z}/{tile.x}/{tile.y}.png").status_code == 200


def test_catalog_corrupted_under_a_running_server_keeps_the_last_good_one(store: Store, live_server_for, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    server = live_server_for(store.storage.url)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/api/layers/reflectivity").json()["latest"] == "2026-11-27T22:05:00Z"
        path = Path(store.storage.gdal_path(catalog_key("reflectivity")))
        path.write_bytes(path.read_bytes()[:5000])  # an interrupted copy
        again = client.get("/api/layers/reflectivity")
        assert again.status_code == 200 and again.json()["latest"] == "2026-11-27T22:05:00Z"
        lines = [r.getMessage() for r in caplog.records if catalog_key("reflectivity") in r.getMessage()]
        assert len(lines) == 1 and "unreadable" in lines[0]
        client.get("/api/layers/reflectivity")
        # The same bad bytes are not parsed, nor logged, again.
        assert len([r for r in caplog.records if catalog_key("reflectivity") in r.getMessage()]) == 1


def test_corrupt_catalog_at_start_is_502_and_logged(store: Store, live_server_for, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    path = Path(store.storage.gdal_path(catalog_key("reflectivity")))
    path.write_bytes(b"\x1f\x8b\x08" + path.read_bytes()[:100])
    server = live_server_for(store.storage.url)
    with httpx.Client(base_url=server.url) as client:
        assert_502(client, "/tiles/reflectivity/latest/4/3/5.png", caplog, catalog_key("reflectivity"))
        assert client.get("/readyz").status_code == 200
