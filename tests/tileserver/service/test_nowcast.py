"""Nowcast frames: motion stored at ingest, extrapolated tiles, their URLs and caching."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import mercantile
import numpy as np
import pytest
import rasterio
from affine import Affine

from ingest.pipeline import ingest_file
from renderers.nowcast.advection import MotionField, trace
from renderers.nowcast.tiles import nearest, source_window
from tileserver.core.grid import ORIGIN
from tileserver.core.reader import read_area, read_motion
from tileserver.service.nowcast import tile_codes as nowcast_tile
from tests.conftest import T0, minutes
from tests.fixtures.storms import RADAR, RES, ingest_steps, write_step
from tileserver.service.params import tile_params
from tileserver.core.settings import Settings
from tileserver.service import TileService, targets
from tileserver.store.storage import open_storage
from tileserver.store import Store

@pytest.fixture(scope="module")
def nowcast_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Store]:
    """Three observed frames (0, 5, 10 min) and a truth store with the later frames."""
    folder = tmp_path_factory.mktemp("nowcast")
    store = Store(open_storage(str(folder / "store"), create=True))
    truth = Store(open_storage(str(folder / "truth"), create=True))
    ingest_steps(store, folder, range(3))
    ingest_steps(truth, folder, (8,))
    return store, truth


def service_for(store: Store) -> TileService:
    return TileService(store, Settings(store=store.storage.url))


def npy(service: TileService, time: str, tile: mercantile.Tile, scale: str = "") -> np.ndarray:
    request = tile_params("reflectivity", time, str(tile.z), str(tile.x), f"{tile.y}{scale}.npy", {})
    target, etag, cc = service.tiles.prepare_tile(request)
    return np.load(io.BytesIO(service.tiles.render_tile(request, target, etag)))


def test_motion_is_stored_beside_the_frame_and_recovers_the_speed(nowcast_store: tuple[Store, Store]) -> None:
    import rasterio

    store, _ = nowcast_store
    frames = store.load_catalog("reflectivity").frames
    assert frames[0].motion is None  # nothing before the first frame
    assert frames[-1].motion == frames[-1].key.removesuffix(".tif") + ".motion.tif"
    assert store.storage.exists(frames[-1].motion)
    with rasterio.open(store.storage.gdal_path(frames[-1].motion)) as motion:
        u, v = motion.read()
    # 0.2 deg per 5 min eastward: in mercator metres per second.
    expected = 0.2 * 111319.49 / 300.0
    echo = np.abs(u) > 1
    assert abs(np.median(u[echo]) - expected) / expected < 0.1
    assert abs(np.median(v[echo])) < 0.1 * expected


def test_api_lists_nowcast_frames_separately(nowcast_store: tuple[Store, Store]) -> None:
    store, _ = nowcast_store
    info = service_for(store).metadata.layer_info(RADAR, "http://x/")
    assert info["frames"] == ["2026-11-27T21:00:00Z", "2026-11-27T21:05:00Z", "2026-11-27T21:10:00Z"]
    assert info["nowcast"][0] == {"time": "2026-11-27T21:15:00Z", "lead_minutes": 5}
    assert info["nowcast"][-1] == {"time": "2026-11-27T23:10:00Z", "lead_minutes": 120}
    assert len(info["nowcast"]) == 24


def test_translated_pattern_is_forecast_to_the_right_place(nowcast_store: tuple[Store, Store]) -> None:
    store, truth = nowcast_store
    service, truth_service = service_for(store), service_for(truth)
    lead_time = "2026-11-27T21:40:00Z"  # 30 min after the latest frame, frame 8 of the sequence
    hits = misses = false_alarms = 0
    persistence_hits = persistence_misses = persistence_false = 0
    for tile in mercantile.tiles(-118.0, 36.0, -92.0, 50.0, 6):
        forecast = npy(service, lead_time, tile) >= 20
        observed = npy(truth_service, lead_time, tile) >= 20
        latest = npy(service, "2026-11-27T21:10:00Z", tile) >= 20
        hits += int((forecast & observed).sum())
        misses += int((~forecast & observed).sum())
        false_alarms += int((forecast & ~observed).sum())
        persistence_hits += int((latest & observed).sum())
        persistence_misses += int((~latest & observed).sum())
        persistence_false += int((latest & ~observed).sum())
    csi = hits / (hits + misses + false_alarms)
    persistence = persistence_hits / (persistence_hits + persistence_misses + persistence_false)
    assert csi > 0.8, csi
    assert csi > persistence + 0.2, (csi, persistence)


def test_neighbouring_tiles_meet_without_seams(nowcast_store: tuple[Store, Store]) -> None:
    store, _ = nowcast_store
    service = service_for(store)
    parent = mercantile.tile(-100.0, 42.0, 6)
    big = npy(service, "2026-11-27T21:50:00Z", parent, "@2x")
    children = mercantile.children(parent)
    stitched = np.zeros((512, 512), np.float32)
    for child in children:
        row, col = (child.y - parent.y * 2) * 256, (child.x - parent.x * 2) * 256
        stitched[row : row + 256, col : col + 256] = npy(service, "2026-11-27T21:50:00Z", child)
    # Same pixel centres: the four children are the retina parent, pixel for pixel.
    np.testing.assert_array_equal(stitched, big)


def test_zoom_levels_agree(nowcast_store: tuple[Store, Store]) -> None:
    store, _ = nowcast_store
    service = service_for(store)
    parent = mercantile.tile(-100.0, 42.0, 6)
    coarse = npy(service, "2026-11-27T22:10:00Z", parent) >= 20
    fine = np.zeros((512, 512), bool)
    for child in mercantile.children(parent):
        row, col = (child.y - parent.y * 2) * 256, (child.x - parent.x * 2) * 256
        fine[row : row + 256, col : col + 256] = npy(service, "2026-11-27T22:10:00Z", child) >= 20
    block = fine.reshape(256, 2, 256, 2).mean(axis=(1, 3))
    disagree = np.abs(coarse.astype(float) - block) > 0.5
    assert disagree.mean() < 0.03
    # Echo areas at the two zooms match within a few percent.
    assert abs(coarse.mean() - fine.mean()) < 0.03 * max(fine.mean(), 1e-6) + 0.002


def test_reflectivity_nowcasts_interpolate_in_dbz_between_cells(nowcast_store: tuple[Store, Store]) -> None:
    """Reflectivity is interpolated at departure points too (in dBZ, as pySTEPS interpolates in dB),
    though its overviews take whole cells: the tile differs from the cells the departures fall in."""
    store, _ = nowcast_store
    assert RADAR.resampling == "nearest"
    latest = store.load_catalog(RADAR.id).frames[-1]
    tile = mercantile.tile(-100.0, 42.0, 6)
    served = RADAR.encoding.encode(npy(service_for(store), "2026-11-27T21:40:00Z", tile))
    with rasterio.open(store.storage.gdal_path(latest.motion)) as motion:
        departures = trace(MotionField(*read_motion(motion)), 1800.0)
    left, _, right, top = mercantile.xy_bounds(tile)
    window = source_window(departures, left, top, (right - left) / 256, 256, ORIGIN)
    with rasterio.open(store.storage.gdal_path(latest.key)) as dataset:
        blended = nowcast_tile(dataset, tile, 256, departures, RADAR.encoding.no_echo)
        area = read_area(dataset, window.left, window.top, window.step, window.width, window.height)
    cells = nearest(area, window.columns, window.rows, int(RADAR.encoding.nodata))
    assert len(np.unique(served)) > 10
    np.testing.assert_array_equal(served, blended)
    assert np.count_nonzero(blended != cells) > 500


def test_no_rain_from_outside_coverage(nowcast_store: tuple[Store, Store]) -> None:
    store, _ = nowcast_store
    service = service_for(store)
    # The western edge: motion is eastward, so trajectories reach back past the
    # frame's edge (and through the no-coverage strip): no data there, not zero.
    tile = mercantile.tile(-129.5, 45.0, 6)
    values = npy(service, "2026-11-27T23:10:00Z", tile)
    left, _, right, _ = mercantile.bounds(tile)
    lon = left + (np.arange(256) + 0.5) / 256 * (right - left)
    displaced = lon - 0.2 * 24 < -130.0 + 10 * RES  # 2 h at 0.2 deg per 5 min
    assert np.isnan(values[:, displaced]).all()
    assert not (values[:, displaced] == 0).any()


def test_nowcast_urls_cache_and_errors(nowcast_store: tuple[Store, Store], live_server_for) -> None:  # noqa: ANN001
    store, _ = nowcast_store
    server = live_server_for(store.storage.url, latest_max_age_s=60)
    tile = mercantile.tile(-100.0, 42.0, 6)
    base = f"{server.url}/tiles/reflectivity/{{}}/{tile.z}/{tile.x}/{tile.y}.png"
    nowcast = httpx.get(base.format("2026-11-27T21:25:00Z"))
    assert nowcast.status_code == 200
    assert nowcast.headers["cache-control"] == "public, max-age=60"
    assert nowcast.headers["x-frame-time"] == "2026-11-27T21:25:00Z"
    assert nowcast.headers["x-nowcast-from"] == "2026-11-27T21:10:00Z"
    observed = httpx.get(base.format("2026-11-27T21:10:00Z"))
    assert observed.headers["etag"] != nowcast.headers["etag"] and "immutable" in observed.headers["cache-control"]
    assert httpx.get(base.format("2026-11-27T21:25:00Z"), headers={"If-None-Match": nowcast.headers["etag"]}).status_code == 304
    # Beyond the horizon, off the cadence, and between observed frames: 404 with a reason.
    for time, needle in (("2026-11-27T23:15:00Z", "nowcasts are every 5 min up to 120 min"), ("2026-11-27T21:27:00Z", "nowcasts"), ("2026-11-27T21:02:00Z", "no frame")):
        response = httpx.get(base.format(time))
        assert response.status_code == 404 and needle in response.json()["error"], (time, response.text)
    point = httpx.get(f"{server.url}/api/layers/reflectivity/point", params={"lon": -100, "lat": 42, "time": "2026-11-27T21:40:00Z"}).json()
    assert point["nowcast"] == {"from": "2026-11-27T21:10:00Z", "lead_minutes": 30}
    assert point["time"] == "2026-11-27T21:40:00Z"
    raw = httpx.get(base.format("2026-11-27T21:25:00Z").replace(".png", ".npy"))
    assert raw.status_code == 200 and np.load(io.BytesIO(raw.content)).shape == (256, 256)


def test_motion_survives_a_restart_and_new_frames_change_the_nowcast(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    folder = tmp_path / "store"
    store = Store(open_storage(str(folder), create=True))
    for step in range(2):
        ingest_file(store, write_step(tmp_path, step), RADAR, time=T0 + minutes(5 * step))
    tile = mercantile.tile(-100.0, 42.0, 6)
    first = live_server_for(str(folder))
    url = f"/tiles/reflectivity/2026-11-27T21:20:00Z/{tile.z}/{tile.x}/{tile.y}.png"
    before = httpx.get(first.url + url)
    second = live_server_for(str(folder))  # a fresh process state: motion comes from the store
    again = httpx.get(second.url + url)
    assert before.status_code == again.status_code == 200 and before.content == again.content
    ingest_file(store, write_step(tmp_path, 2), RADAR, time=T0 + minutes(10))
    after = httpx.get(second.url + url)
    assert after.status_code == 200 and after.headers["etag"] != again.headers["etag"]
    assert after.headers["x-nowcast-from"] == "2026-11-27T21:10:00Z"


def test_backfill_newest_first_still_gets_motion(tmp_path: Path) -> None:
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    for step in (2, 1, 0):
        ingest_file(store, write_step(tmp_path, step), RADAR, time=T0 + minutes(5 * step))
    frames = store.load_catalog("reflectivity").frames
    assert frames[-1].motion is not None
    assert targets.nowcasts(RADAR, store.load_catalog("reflectivity"), Settings().nowcast_horizon_min)


@pytest.mark.parametrize("zoom", [4, 6, 9])
def test_tiles_meet_without_seams_where_trajectories_curve(nowcast_store: tuple[Store, Store], zoom: int) -> None:
    """A whirl over the storms (speeds 0 to 60 m/s, turning 120 degrees in 2 h): @2x parents equal their children."""
    store, _ = nowcast_store
    latest = store.load_catalog(RADAR.id).frames[-1]
    with rasterio.open(store.storage.gdal_path(latest.key)) as dataset:
        codes = dataset.read(1)
        codes[codes == RADAR.encoding.nodata] = 0
        row, col = np.unravel_index(np.argmax(codes), codes.shape)
        lon, lat = dataset.xy(row, col)  # the strongest echo, in the whirl's eye
    centre = mercantile.xy(*mercantile.lnglat(lon, lat)) if dataset.crs.to_epsg() == 3857 else mercantile.xy(lon, lat)
    cell = 20_000.0
    rows, cols = np.mgrid[0:120, 0:160]
    left, top = centre[0] - 80 * cell, centre[1] + 60 * cell
    x, y = left + (cols + 0.5) * cell - centre[0], top - (rows + 0.5) * cell - centre[1]
    omega = 2 * np.pi / (6 * 3600)
    speed = np.minimum(1.0, 60.0 / (omega * np.hypot(x, y) + 1e-9))  # capped at 60 m/s
    field = MotionField((-omega * y * speed).astype(np.float32), (omega * x * speed).astype(np.float32),
                        Affine(cell, 0, left, 0, -cell, top))
    departures = trace(field, 7200.0)
    with rasterio.open(store.storage.gdal_path(latest.key)) as dataset:
        parent = mercantile.tile(*mercantile.lnglat(*centre), zoom)
        big = nowcast_tile(dataset, parent, 512, departures)
        stitched = np.zeros_like(big)
        for child in mercantile.children(parent):
            r, c = (child.y - parent.y * 2) * 256, (child.x - parent.x * 2) * 256
            stitched[r : r + 256, c : c + 256] = nowcast_tile(dataset, child, 256, departures)
    assert len(np.unique(big)) > 10  # rain was moved here, not nothing
    np.testing.assert_array_equal(stitched, big)
