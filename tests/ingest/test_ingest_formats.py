"""Ingest round trips: each format and CRS in, values out through the server's reads.

The truth is the source grid as GDAL reads it. A served value at a point must be
the source value under the centre of the stored Web Mercator cell there: exactly
(within quantisation) for nearest-resampled layers, and between the four
surrounding source values for bilinear ones.
"""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from ingest.demo import samples, synthetic
from tests.fixtures import files
from ingest.errors import IngestError
from ingest.pipeline import ingest_file, ingest_files
from tileserver.core.layers import LAYERS, Layer
from tileserver.core.settings import Settings
from tileserver.service import TileService
from tileserver.store.storage import open_storage
from tileserver.store import Frame, Store

VALID = datetime(2026, 11, 27, 21, 40, tzinfo=timezone.utc)
RUN = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(open_storage(str(tmp_path / "store"), create=True))


def truth(path: Path, band: int = 1) -> tuple[np.ndarray, rasterio.crs.CRS, Affine]:
    name = f"/vsigzip/{path}" if path.suffix == ".gz" else str(path)
    with rasterio.Env(GRIB_NORMALIZE_UNITS="YES"), rasterio.open(name) as src:
        if src.subdatasets and src.count == 0:
            with rasterio.open(src.subdatasets[0]) as sub:
                return sub.read(band, masked=True).filled(np.nan).astype(np.float64), sub.crs, sub.transform
        return src.read(band, masked=True).filled(np.nan).astype(np.float64), src.crs, src.transform


def check_values(store: Store, frame: Frame, layer: Layer, grid: np.ndarray, crs: object, transform: Affine, n: int = 60, seed: int = 0, focus: np.ndarray | None = None) -> int:
    """Compare served points with the source; returns how many points had data.

    Points are random in the frame, or near random source cells of ``focus`` (a
    mask over the source grid) so sparse echoes get checked too. GDAL's warp
    places samples within 0.125 source pixels, so a nearest value may come from
    a cell that close to the exact position.
    """
    service = TileService(store, Settings(store=store.storage.url))
    step = layer.encoding.scale / 2 + 1e-6
    to_source = Transformer.from_crs("EPSG:3857", crs, always_xy=True)
    rng = np.random.default_rng(seed)
    west, south, east, north = frame.bounds
    checked = 0
    with rasterio.open(store.storage.gdal_path(frame.key)) as cog:
        focus_cells = np.argwhere(focus) if focus is not None else None
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
        for _ in range(n):
            if focus_cells is not None:
                j, i = focus_cells[rng.integers(len(focus_cells))]
                lon, lat = to_lonlat.transform(*(transform * (i + rng.uniform(0.2, 0.8), j + rng.uniform(0.2, 0.8))))
            else:
                lon, lat = rng.uniform(west, east), rng.uniform(south, north)
            served = service.points.point(layer, float(lon), float(lat), frame.time, frame.run)
            # Centre of the stored cell under the point, in the source grid.
            x, y = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True).transform(lon, lat)
            col, row = ~cog.transform * (x, y)
            cx, cy = cog.transform * (np.floor(col) + 0.5, np.floor(row) + 0.5)
            sx, sy = to_source.transform(cx, cy)
            scol, srow = ~transform * (sx, sy)
            if layer.resampling == "nearest":
                near = {
                    (int(np.floor(srow + dy)), int(np.floor(scol + dx)))
                    for dx in (-0.13, 0.0, 0.13) for dy in (-0.13, 0.0, 0.13)
                }
                statuses = {_status(grid, j, i, layer) for j, i in near}
                assert served["status"] in {s for s, _ in statuses}, (lon, lat, served, statuses)
                if served["status"] == "ok":
                    values = [v for s, v in statuses if s == "ok"]
                    assert min(abs(served["value"] - v) for v in values) <= step, (lon, lat, served, values)
                    checked += 1
            else:
                # The 2x2 kernel around the sample, widened by GDAL's placement error.
                i0, i1 = int(np.floor(scol - 0.63)), int(np.floor(scol + 0.63)) + 1
                j0, j1 = int(np.floor(srow - 0.63)), int(np.floor(srow + 0.63)) + 1
                if not (0 <= i0 and i1 < grid.shape[1] and 0 <= j0 and j1 < grid.shape[0]):
                    continue  # at the grid's rim, where GDAL's warp has partial kernels
                block = grid[j0 : j1 + 1, i0 : i1 + 1]
                if np.isnan(block).any() or any(np.isclose(block, m).any() for m in layer.missing_values):
                    continue
                assert served["status"] == "ok", (lon, lat, served)
                assert block.min() - step <= served["value"] <= block.max() + step, (lon, lat, served, block)
                checked += 1
    return checked


def _status(grid: np.ndarray, j: int, i: int, layer: Layer) -> tuple[str, float]:
    if not (0 <= i < grid.shape[1] and 0 <= j < grid.shape[0]):
        return "no-coverage", np.nan
    value = grid[j, i]
    if np.isnan(value) or any(np.isclose(value, m) for m in layer.missing_values):
        return "no-coverage", np.nan
    if layer.no_echo_below is not None and value < layer.no_echo_below:
        return "no-echo", np.nan
    return "ok", float(value)


def test_mrms_reflectivity_grib2_gz(store: Store, tmp_path: Path) -> None:
    _, dbz = next(synthetic.radar_sequence(VALID, steps=1, shape=(350, 700), coverage=True))
    path = tmp_path / samples.mrms_filename("MergedReflectivityQCComposite", "00.50", VALID)
    samples.write_mrms_grib2(path, dbz, VALID)
    frame = ingest_file(store, path, LAYERS["reflectivity"]).frame
    assert frame.time == VALID and frame.run is None
    assert frame.bounds == pytest.approx((-130, 20, -60, 55), abs=0.01)
    grid, crs, transform = truth(path)
    assert (grid == -999).any() and (grid == -99).any() and (grid > 50).any()
    check_values(store, frame, LAYERS["reflectivity"], grid, crs, transform, n=200)  # mostly no echo / no coverage
    assert check_values(store, frame, LAYERS["reflectivity"], grid, crs, transform, n=200, focus=grid > 5) > 150


def test_mrms_precip_rate_keeps_no_coverage(store: Store, tmp_path: Path) -> None:
    rows, cols = np.mgrid[0:350, 0:700]
    rate = (np.sin(rows / 20.0) * np.cos(cols / 30.0) * 20 + 10).clip(0, None).round(1).astype(np.float32)
    rate[:, :50] = -3.0  # no coverage
    rate[:40, :] = -1.0  # missing
    path = tmp_path / samples.mrms_filename("PrecipRate", "00.00", VALID)
    samples.write_mrms_grib2(path, rate, VALID, product="PrecipRate")
    frame = ingest_file(store, path, LAYERS["precip-rate"]).frame
    service = TileService(store, Settings(store=store.storage.url))
    assert service.points.point(LAYERS["precip-rate"], -128.0, 40.0, VALID)["status"] == "no-coverage"
    assert service.points.point(LAYERS["precip-rate"], -100.0, 54.9, VALID)["status"] == "no-coverage"
    grid, crs, transform = truth(path)
    assert check_values(store, frame, LAYERS["precip-rate"], grid, crs, transform) > 20


@pytest.fixture
def hrrr_file(tmp_path: Path) -> Path:
    path = tmp_path / "hrrr.t18z.wrfsfcf03.grib2"
    samples.write_hrrr_grib2(path, RUN, timedelta(hours=3), shape=(150, 240))
    return path


def test_hrrr_temperature_picks_2m_message(store: Store, hrrr_file: Path) -> None:
    layer = LAYERS["temperature-2m"]
    frame = ingest_file(store, hrrr_file, layer).frame
    assert frame.time == RUN + timedelta(hours=3) and frame.run == RUN
    assert frame.key.startswith("temperature-2m/runs/20261127T180000Z/")
    with rasterio.open(hrrr_file) as src:
        bands = {(src.tags(b)["GRIB_ELEMENT"], src.tags(b)["GRIB_SHORT_NAME"]): b for b in range(1, src.count + 1)}
    grid, crs, transform = truth(hrrr_file, bands[("TMP", "2-HTGL")])
    assert -30 < np.nanmean(grid) < 40  # degC, not K
    assert check_values(store, frame, layer, grid, crs, transform) > 30
    # --band picks another message: the 500 hPa temperature is far colder.
    upper = ingest_file(store, hrrr_file, layer, band=(bands[("TMP", "50000-ISBL")],), run=RUN - timedelta(hours=6)).frame
    service = TileService(store, Settings(store=store.storage.url))
    lon = (frame.bounds[0] + frame.bounds[2]) / 2
    lat = (frame.bounds[1] + frame.bounds[3]) / 2
    surface = service.points.point(layer, lon, lat, frame.time, RUN)["value"]
    aloft = service.points.point(layer, lon, lat, upper.time, upper.run)["value"]
    assert aloft < surface - 15


def test_hrrr_wind_speed_from_components(store: Store, hrrr_file: Path) -> None:
    layer = LAYERS["wind-speed-10m"]
    frame = ingest_file(store, hrrr_file, layer).frame
    with rasterio.open(hrrr_file) as src:
        bands = {(src.tags(b)["GRIB_ELEMENT"], src.tags(b)["GRIB_SHORT_NAME"]): b for b in range(1, src.count + 1)}
    u, crs, transform = truth(hrrr_file, bands[("UGRD", "10-HTGL")])
    v, _, _ = truth(hrrr_file, bands[("VGRD", "10-HTGL")])
    u80, _, _ = truth(hrrr_file, bands[("UGRD", "80-HTGL")])
    assert not np.allclose(u, u80)  # the 80 m distractor differs
    assert check_values(store, frame, layer, np.hypot(u, v), crs, transform) > 30


def test_hrrr_composite_reflectivity(store: Store, hrrr_file: Path) -> None:
    frame = ingest_file(store, hrrr_file, LAYERS["reflectivity-model"]).frame
    assert frame.time == RUN + timedelta(hours=3) and frame.run == RUN
    grid, crs, transform = truth(hrrr_file, 1)
    assert check_values(store, frame, LAYERS["reflectivity-model"], grid, crs, transform, n=200, focus=grid > 5) > 150


def test_model_reflectivity_is_not_an_observation(store: Store, hrrr_file: Path) -> None:
    """A model's REFC never lands in the observed radar layer, where it would get nowcasts."""
    with pytest.raises(IngestError, match="no GRIB message for layer reflectivity"):
        ingest_file(store, hrrr_file, LAYERS["reflectivity"])


def test_gfs_global_0_360_longitudes(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "gfs.t18z.pgrb2.1p00.f006"
    samples.write_gfs_grib2(path, RUN, timedelta(hours=6), shape=(181, 360))
    frame = ingest_file(store, path, LAYERS["temperature-2m"]).frame
    assert frame.bounds[0] == pytest.approx(-180, abs=0.6) and frame.bounds[2] == pytest.approx(180, abs=0.6)
    grid, crs, transform = truth(path)
    assert transform.c < 0  # GDAL rewrapped it to -180..180
    assert check_values(store, frame, LAYERS["temperature-2m"], grid, crs, transform, n=120) > 60
    service = TileService(store, Settings(store=store.storage.url))
    for lon in (-179.7, -100.0, 0.2, 100.0, 179.7):
        assert service.points.point(LAYERS["temperature-2m"], lon, 10.0, frame.time, frame.run)["status"] == "ok"


@pytest.mark.parametrize("crs_name", ["latlon", "polar_stereographic", "lambert_conformal"])
def test_netcdf_cf_with_grid_mapping(store: Store, tmp_path: Path, crs_name: str) -> None:
    transform = files.default_netcdf_transform(crs_name, (120, 160))
    crs = files.netcdf_crs(crs_name)
    rows, cols = np.mgrid[0:120, 0:160]
    kelvin = (265 + 20 * np.sin(rows / 15.0) + 8 * np.cos(cols / 11.0)).astype(np.float32)
    kelvin[:5, :5] = np.nan
    path = tmp_path / f"t2m-{crs_name}.nc"
    files.write_netcdf_cf(path, kelvin, VALID, crs=crs_name, var_name="t2m", units="K", standard_name="air_temperature", transform=transform)
    frame = ingest_file(store, path, LAYERS["temperature-2m"]).frame
    assert frame.time == VALID and frame.run == VALID  # no run in the file: the analysis time
    grid, src_crs, src_transform = truth(path)
    assert src_crs is not None and crs is not None
    assert check_values(store, frame, LAYERS["temperature-2m"], grid - 273.15, src_crs, src_transform) > 20


def test_netcdf_reflectivity_latlon(store: Store, tmp_path: Path) -> None:
    _, dbz = next(synthetic.radar_sequence(VALID, steps=1, shape=(350, 700), coverage=True))
    path = tmp_path / "radar.nc"
    files.write_netcdf_cf(path, dbz, VALID, crs="latlon", fill_value=-999.0)
    frame = ingest_file(store, path, LAYERS["reflectivity"]).frame
    grid, crs, transform = truth(path)
    assert check_values(store, frame, LAYERS["reflectivity"], grid, crs, transform, n=200, focus=grid > 5) > 150


@pytest.mark.parametrize("epsg", [3413, 5070, 32614])
def test_geotiff_projected(store: Store, tmp_path: Path, epsg: int) -> None:
    origins = {3413: (-2_000_000.0, 1_000_000.0), 5070: (-1_000_000.0, 2_500_000.0), 32614: (300_000.0, 4_200_000.0)}
    west, north = origins[epsg]
    transform = Affine(5000.0, 0, west, 0, -5000.0, north)
    rows, cols = np.mgrid[0:100, 0:140]
    values = (np.round((10 + 40 * np.abs(np.sin(rows / 9.0) * np.cos(cols / 13.0))) * 2) / 2).astype(np.float32)
    path = tmp_path / f"radar-{epsg}.tif"
    files.write_geotiff(path, values, f"EPSG:{epsg}", transform, nodata=-999.0, tags={"TIFFTAG_DATETIME": "2026:11:27 21:40:00"})
    frame = ingest_file(store, path, LAYERS["reflectivity"]).frame
    assert frame.time == VALID
    assert check_values(store, frame, LAYERS["reflectivity"], values.astype(np.float64), rasterio.crs.CRS.from_epsg(epsg), transform, n=150) > 40


def test_truncated_and_corrupt_files_publish_nothing(store: Store, tmp_path: Path) -> None:
    _, dbz = next(synthetic.radar_sequence(VALID, steps=1, shape=(350, 700)))
    good = tmp_path / samples.mrms_filename("MergedReflectivityQCComposite", "00.50", VALID)
    samples.write_mrms_grib2(good, dbz, VALID)
    raw = gzip.decompress(good.read_bytes())
    truncated_gz = tmp_path / samples.mrms_filename("MergedReflectivityQCComposite", "00.50", VALID + timedelta(minutes=2))
    truncated_gz.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    truncated_grib = tmp_path / "MRMS_MergedReflectivityQCComposite_00.50_20261127-214400.grib2"
    truncated_grib.write_bytes(raw[: len(raw) // 3])
    wrong_layer = tmp_path / "hrrr.grib2"
    samples.write_hrrr_grib2(wrong_layer, RUN, timedelta(hours=1), shape=(60, 80))
    report = ingest_files(store, [truncated_gz, truncated_grib, good], LAYERS["reflectivity"], progress=False)
    reasons = dict(report.failed)
    assert "truncated or corrupt gzip" in reasons[truncated_gz]
    assert truncated_grib in reasons
    assert [r.frame.time for r in report.published] == [VALID]
    with pytest.raises(IngestError, match="no GRIB message for layer precip-rate"):
        ingest_file(store, wrong_layer, LAYERS["precip-rate"])
    assert [f.time for f in store.load_catalog("reflectivity").frames] == [VALID]
    assert store.load_catalog("precip-rate").frames == ()
    assert len([o for o in store.storage.list("") if o.key.endswith(".tif")]) == 1
