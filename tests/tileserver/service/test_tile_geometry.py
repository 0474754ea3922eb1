"""Tile pixels land where mercantile says, and values survive ingest exactly."""

from __future__ import annotations

import io
from pathlib import Path

import mercantile
import numpy as np
import pytest
import rasterio
from hypothesis import given, settings, strategies as st

from ingest.pipeline import ingest_file
from tests.conftest import T0, write_latlon_geotiff
from tileserver.core.layers import LAYERS
from tileserver.service.params import tile_params
from tileserver.core.reader import read_tile
from tileserver.core.settings import Settings
from tileserver.service import TileService
from tileserver.store import Store

RADAR = LAYERS["reflectivity"]
WEST, NORTH, RES = -130.0, 55.0, 0.1
SHAPE = (350, 700)


def checker_values() -> np.ndarray:
    """Distinct dBZ per cell, all exactly representable in the 0.5 dBZ encoding."""
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    return (-30.0 + ((rows * 13 + cols * 7) % 250) * 0.5).astype(np.float32)


def source_value(values: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    col = np.floor((lon - WEST) / RES).astype(int)
    row = np.floor((NORTH - lat) / RES).astype(int)
    inside = (col >= 0) & (col < SHAPE[1]) & (row >= 0) & (row < SHAPE[0])
    out = np.full(lon.shape, np.nan, dtype=np.float32)
    out[inside] = values[row[inside], col[inside]]
    return out


@pytest.fixture(scope="module")
def checker_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str, np.ndarray]:
    from tileserver.store.storage import open_storage

    folder = tmp_path_factory.mktemp("geometry")
    values = checker_values()
    path = write_latlon_geotiff(folder / "checker.tif", values, WEST, NORTH, RES)
    store = Store(open_storage(str(folder / "store"), create=True))
    frame = ingest_file(store, path, RADAR, time=T0).frame
    return store, frame.key, values


def expected_tile(dataset: rasterio.DatasetReader, values: np.ndarray, tile: mercantile.Tile, size: int) -> np.ndarray:
    """What pixel (i, j) must show: the source cell under the centre of the COG cell under the pixel centre."""
    left, bottom, right, top = mercantile.xy_bounds(tile)
    step = (right - left) / size
    xs = left + (np.arange(size) + 0.5) * step
    ys = top - (np.arange(size) + 0.5) * step
    x, y = np.meshgrid(xs, ys)
    t = dataset.transform
    col = np.floor((x - t.c) / t.a)
    row = np.floor((y - t.f) / t.e)
    cx, cy = t.c + (col + 0.5) * t.a, t.f + (row + 0.5) * t.e
    lon, lat = _lnglat(cx, cy)
    inside = (col >= 0) & (col < dataset.width) & (row >= 0) & (row < dataset.height)
    expected = source_value(values, lon, lat)
    expected[~inside] = np.nan
    return expected


def _lnglat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = 6378137.0
    return np.degrees(x / r), np.degrees(2 * np.arctan(np.exp(y / r)) - np.pi / 2)


@settings(max_examples=40, deadline=None)
@given(z=st.integers(4, 9), fx=st.floats(0.0, 1.0), fy=st.floats(0.0, 1.0), size=st.sampled_from([256, 512]))
def test_tile_pixels_match_mercantile_geometry(checker_store: tuple[Store, str, np.ndarray], z: int, fx: float, fy: float, size: int) -> None:
    store, key, values = checker_store
    # A tile somewhere over (and around the edges of) the grid.
    lon = -132.0 + fx * 74.0
    lat = 18.0 + fy * 39.0
    tile = mercantile.tile(lon, lat, z)
    with rasterio.open(store.storage.gdal_path(key)) as dataset:
        assert round(np.log2(156543.03392804097 / dataset.res[0])) == 4  # native zoom 4
        codes = read_tile(dataset, tile, size)
        expected = expected_tile(dataset, values, tile, size)
    decoded = RADAR.encoding.decode(codes)
    np.testing.assert_array_equal(np.isnan(decoded), np.isnan(expected))
    ok = ~np.isnan(expected)
    np.testing.assert_array_equal(decoded[ok], expected[ok])


@pytest.mark.parametrize("z", [1, 2, 3])
def test_overview_tiles_take_values_from_their_footprint(checker_store: tuple[Store, str, np.ndarray], z: int) -> None:
    store, key, _ = checker_store
    tile = mercantile.tile(-95.0, 38.0, z)
    with rasterio.open(store.storage.gdal_path(key)) as dataset:
        coarse = RADAR.encoding.decode(read_tile(dataset, tile, 256))
        factor = 2 ** (4 - z)
        child = mercantile.Tile(tile.x * factor, tile.y * factor, 4)
        fine = RADAR.encoding.decode(read_tile(dataset, child, 256))
    # The top-left child's pixels are the full-resolution cells under the coarse
    # tile's top-left 256/factor pixels; nearest overviews pick one of each block.
    n = 256 // factor
    for j in range(0, n, 7):
        for i in range(0, n, 7):
            block = fine[j * factor : (j + 1) * factor, i * factor : (i + 1) * factor]
            value = coarse[j, i]
            if np.isnan(value):
                assert np.isnan(block).any()
            else:
                assert value in block


def test_point_and_npy_equal_the_source_value(tmp_path: Path) -> None:
    from tileserver.store.storage import open_storage

    # Constant 1-degree blocks, so a point away from block edges has one true value.
    rows, cols = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    values = (-20.0 + ((rows // 10) * 3 + (cols // 10) * 5) % 180 * 0.5).astype(np.float32)
    path = write_latlon_geotiff(tmp_path / "blocks.tif", values, WEST, NORTH, RES)
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    ingest_file(store, path, RADAR, time=T0)
    service = TileService(store, Settings(store=str(tmp_path / "store")))
    rng = np.random.default_rng(1)
    for _ in range(25):
        lon = -129.0 + rng.integers(0, 68) + 0.3 + rng.random() * 0.4
        lat = 21.0 + rng.integers(0, 33) + 0.3 + rng.random() * 0.4
        truth = float(source_value(values, np.array([lon]), np.array([lat]))[0])
        result = service.points.point(RADAR, lon, lat, "latest")
        assert result["status"] == "ok" and result["value"] == pytest.approx(truth, abs=0.25)
        tile = mercantile.tile(lon, lat, 8)
        request = tile_params("reflectivity", "latest", "8", str(tile.x), f"{tile.y}.npy", {})
        frame, etag, cc = service.tiles.prepare_tile(request)
        grid = np.load(io.BytesIO(service.tiles.render_tile(request, frame, etag)))
        left, bottom, right, top = mercantile.xy_bounds(tile)
        x, y = mercantile.xy(lon, lat)
        i = int((x - left) / (right - left) * 256)
        j = int((top - y) / (top - bottom) * 256)
        assert grid[j, i] == pytest.approx(truth, abs=0.25)
