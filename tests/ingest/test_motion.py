"""Motion at ingest: frames chosen by the time they span, and real echo speeds recovered from a 2-minute feed."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio

from ingest.motion import STORE_FACTOR, estimation_pixel, previous_frames
from ingest.pipeline import ingest_file
from tests.conftest import T0, minutes, write_latlon_geotiff
from tileserver.core import grid
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Catalog, Frame, Store

EARTH_RADIUS = 6378137.0


def catalog_of(times: list[datetime]) -> Catalog:
    frames = tuple(Frame("reflectivity", t, None, f"reflectivity/k{t:%H%M}", "d", (0, 0, 1, 1), 5, 1, "s", T0) for t in times)
    return Catalog("reflectivity", frames)


def chosen(times: list[datetime], now: datetime) -> list[datetime]:
    return [t for t, _ in previous_frames(catalog_of(times), now)]


@pytest.mark.parametrize(
    ("cadence", "expected"),
    [
        (2, [-12, -6]),  # 2-minute feed (MRMS): pairs 6 minutes apart, not 2
        (5, [-10, -5]),  # 5-minute feed (most radar networks)
        (1, [-10, -5]),
        (10, [-20, -10]),  # a feed slower than the target step: its own step
    ],
)
def test_frames_are_chosen_by_the_time_they_span(cadence: int, expected: list[int]) -> None:
    now = T0 + minutes(60)
    times = [now - minutes(k) for k in range(60, 0, -cadence)]
    assert chosen(times, now) == [now + minutes(m) for m in expected]


def test_missing_frames_shorten_the_span_instead_of_mixing_intervals() -> None:
    now = T0 + minutes(60)
    times = [now - minutes(k) for k in range(30, 0, -2) if k != 12]
    assert chosen(times, now) == [now - minutes(6)]
    # a frame 2 minutes off its place is not taken as the one 6 minutes back
    times = [now - minutes(k) for k in (16, 12, 8, 2)]
    assert chosen(times, now) == [now - minutes(2)]


def test_nothing_recent_means_no_motion() -> None:
    now = T0 + minutes(60)
    assert chosen([now - minutes(30), now - minutes(25)], now) == []
    assert chosen([], now) == []


# A squall of cells drifting east-north-east at real echo speeds, on MRMS's 0.01-degree grid.
RES = 0.01
WEST, NORTH = -100.0, 42.0
SHAPE = (400, 800)
SPEED_EAST, SPEED_NORTH = 14.0, 5.0  # metres per second over the ground


def cells(seconds: float) -> np.ndarray:
    """Rain cells (dBZ, -99 = no echo) displaced by the known motion after ``seconds``."""
    lat0 = math.radians(NORTH - SHAPE[0] * RES / 2)
    dlon = math.degrees(SPEED_EAST * seconds / (EARTH_RADIUS * math.cos(lat0)))
    dlat = math.degrees(SPEED_NORTH * seconds / EARTH_RADIUS)
    lat = NORTH - (np.arange(SHAPE[0]) + 0.5) * RES
    lon = WEST + (np.arange(SHAPE[1]) + 0.5) * RES
    lon, lat = np.meshgrid(lon, lat)
    rng = np.random.default_rng(11)
    values = np.full(SHAPE, -99.0, np.float32)
    for _ in range(90):
        clat, clon = rng.uniform(NORTH - 3.6, NORTH - 0.4), rng.uniform(WEST + 0.5, WEST + 7.0)
        rlat, rlon = rng.uniform(0.05, 0.25), rng.uniform(0.05, 0.3)
        peak = rng.uniform(30, 60)
        blob = peak * np.exp(-(((lat - clat - dlat) / rlat) ** 2 + ((lon - clon - dlon) / rlon) ** 2))
        values = np.where(blob > 10, np.maximum(values, np.round(blob * 2) / 2), values)
    return values


def test_real_echo_speeds_are_recovered_from_a_2_minute_feed(tmp_path: Path) -> None:
    """14 m/s moves an echo 1.7 km in 2 minutes, a third of a ~5 km estimation pixel: the
    motion must come from frames further apart, and be stored in mercator m/s."""
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    for k in range(7):
        path = write_latlon_geotiff(tmp_path / f"r{k}.tif", cells(120.0 * k), WEST, NORTH, RES)
        ingest_file(store, path, LAYERS["reflectivity"], time=T0 + minutes(2 * k))
    latest = store.load_catalog("reflectivity").frames[-1]
    with rasterio.open(store.storage.gdal_path(latest.motion)) as motion:
        u, v = motion.read()
        assert motion.tags()["frame_interval_s"] == "360.0"
        assert motion.tags()["frames"] == "3"
    # ground speed -> mercator speed: 1 / cos(latitude)
    scale = 1 / math.cos(math.radians(NORTH - SHAPE[0] * RES / 2))
    echo = np.hypot(u, v) > 2
    assert echo.sum() > 10
    assert np.median(u[echo]) == pytest.approx(SPEED_EAST * scale, rel=0.1)
    assert np.median(v[echo]) == pytest.approx(SPEED_NORTH * scale, abs=0.15 * SPEED_EAST * scale)


def test_estimation_grid_is_the_finest_the_flow_takes_whole() -> None:
    z7 = grid.resolution(7)
    # the continental US as MRMS is stored (7168 x 4608 cells of zoom 7): ~5 km, zoom 5
    assert estimation_pixel(7168 * z7, 4608 * z7, z7) == grid.resolution(5)
    # a country's composite on the same cells: its own cells
    assert estimation_pixel(1536 * z7, 1536 * z7, z7) == z7
    # never finer than the frame's cells, nor coarser than zoom 5 unless the frame is
    assert estimation_pixel(1024 * grid.resolution(9), 1024 * grid.resolution(9), grid.resolution(9)) == grid.resolution(9)
    assert estimation_pixel(300 * 25_000.0, 200 * 25_000.0, 25_000.0) == 25_000.0
    assert estimation_pixel(40_000 * z7, 20_000 * z7, z7) == grid.resolution(5)


def test_a_small_domain_has_its_motion_estimated_on_the_radars_own_cells(tmp_path: Path) -> None:
    """5 m/s moves an echo 1.5 km in 5 minutes: under a third of a ~5 km pixel, more than
    one of the radar's own ~1.2 km cells, which the flow uses over a domain this size."""
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    slow = 5.0 / SPEED_EAST
    for k in range(3):
        path = write_latlon_geotiff(tmp_path / f"r{k}.tif", cells(300.0 * k * slow), WEST, NORTH, RES)
        ingest_file(store, path, LAYERS["reflectivity"], time=T0 + minutes(5 * k))
    latest = store.load_catalog("reflectivity").frames[-1]
    with rasterio.open(store.storage.gdal_path(latest.motion)) as motion:
        u, v = motion.read()
        assert motion.res[0] == pytest.approx(STORE_FACTOR * grid.resolution(7))
    scale = 1 / math.cos(math.radians(NORTH - SHAPE[0] * RES / 2))
    echo = np.hypot(u, v) > 1
    assert echo.sum() > 10
    assert np.median(u[echo]) == pytest.approx(SPEED_EAST * slow * scale, rel=0.05)
    assert np.median(v[echo]) == pytest.approx(SPEED_NORTH * slow * scale, rel=0.1)
