"""Decoding as other services write their files: packing, scale and offset, grids
without a grid_mapping, calendars, grids across the antimeridian, unit mistakes.

Each file here is written the way the service in question writes it (netCDF4
for CF files, GDAL for GeoTIFFs) for what the real files in ../shared/data do
not show; served values are checked with the same harness as the real files.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.transform import from_origin

from ingest.errors import IngestError
from ingest.pipeline import ingest_source
from tests.ingest.fidelity import Case, Truth, measure
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Store

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def _store(tmp_path: Path) -> tuple[Store, str]:
    path = str(tmp_path / "store")
    return Store(open_storage(path, create=True)), path


def _served(tmp_path: Path, live_server_for, path: Path, layer: str, truth: Truth, **kwargs) -> object:  # noqa: ANN001
    store, url = _store(tmp_path)
    results = ingest_source(store, path, LAYERS[layer], **kwargs)
    server = live_server_for(url)
    return measure(Case(path.name, str(path), layer, lambda: [truth]), server.url, points_per_frame=200), results


def _write_cf_temperature(path: Path, calendar: str | None = "standard", grid_mapping: bool = True, units: str = "K",
                          time_units: str = "hours since 2026-11-27 00:00:00") -> np.ndarray:
    """2 m temperature as CF writers store it: int16 with scale_factor 0.01 and add_offset 273.15."""
    lat = np.arange(60.0, 30.0, -0.5)
    lon = np.arange(-10.0, 30.0, 0.5)
    rng = np.random.default_rng(1)
    kelvin = 273.15 + 5.0 + 10 * np.sin(np.radians(lon))[None, :] + rng.normal(0, 1, (lat.size, lon.size))
    kelvin[20:34, 30:50] = np.nan  # a patch without data
    with netCDF4.Dataset(path, "w") as nc:
        nc.Conventions = "CF-1.8"
        nc.createDimension("time", 1)
        nc.createDimension("lat", lat.size)
        nc.createDimension("lon", lon.size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = time_units
        t.standard_name = "time"
        if calendar:
            t.calendar = calendar
        t[:] = [12.0]
        y = nc.createVariable("lat", "f4", ("lat",))
        y.units, y.standard_name = "degrees_north", "latitude"
        y[:] = lat
        x = nc.createVariable("lon", "f4", ("lon",))
        x.units, x.standard_name = "degrees_east", "longitude"
        x[:] = lon
        var = nc.createVariable("t2m", "i2", ("time", "lat", "lon"), fill_value=np.int16(-32767))
        var.scale_factor = 0.01
        var.add_offset = 273.15
        var.units = units
        var.standard_name = "air_temperature"
        if grid_mapping:
            crs = nc.createVariable("crs", "i4")
            crs.grid_mapping_name = "latitude_longitude"
            crs.semi_major_axis, crs.inverse_flattening = 6378137.0, 298.257223563
            var.grid_mapping = "crs"
        var[0] = np.ma.masked_invalid(kelvin)  # netCDF4 packs with the scale and offset
    return kelvin


def _cf_truth(kelvin: np.ndarray) -> Truth:
    return Truth(T0, kelvin - 273.15, CRS.from_epsg(4326), Affine(0.5, 0, -10.25, 0, -0.5, 60.25))


@pytest.mark.parametrize("grid_mapping", [True, False], ids=["cf-grid-mapping", "coards-no-grid-mapping"])
def test_packed_cf_temperature(tmp_path: Path, live_server_for, grid_mapping: bool) -> None:
    path = tmp_path / "t2m.nc"
    kelvin = _write_cf_temperature(path, grid_mapping=grid_mapping)
    result, published = _served(tmp_path, live_server_for, path, "temperature-2m", _cf_truth(kelvin))
    assert published[0].frame.time == T0
    assert result.points > 100 and result.fraction >= 0.99, result
    assert result.holes == 0 and result.spurious == 0 and result.empty_checked > 0, result


def test_projected_netcdf_without_grid_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "xy.nc"
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("y", 20)
        nc.createDimension("x", 30)
        y = nc.createVariable("y", "f4", ("y",))
        y.units = "m"
        y[:] = np.arange(20) * 1000.0
        x = nc.createVariable("x", "f4", ("x",))
        x.units = "m"
        x[:] = np.arange(30) * 1000.0
        nc.createVariable("t2m", "f4", ("y", "x"))[:] = np.full((20, 30), 280.0)
        nc["t2m"].units = "K"
    store, _ = _store(tmp_path)
    with pytest.raises(IngestError, match="not georeferenced"):
        ingest_source(store, path, LAYERS["temperature-2m"], time=T0)


@pytest.mark.parametrize("calendar", ["360_day", "noleap", "all_leap"])
def test_model_calendars_are_refused(tmp_path: Path, calendar: str) -> None:
    path = tmp_path / "t2m.nc"
    _write_cf_temperature(path, calendar=calendar, time_units="days since 2099-06-01")
    store, _ = _store(tmp_path)
    with pytest.raises(IngestError, match=f"calendar '{calendar}'.*not real dates"):
        ingest_source(store, path, LAYERS["temperature-2m"])
    assert not store.load_catalog("temperature-2m").frames


def test_julian_calendar_gets_real_dates(tmp_path: Path) -> None:
    path = tmp_path / "t2m.nc"
    _write_cf_temperature(path, calendar="julian", time_units="hours since 2026-11-14 00:00:00")
    store, _ = _store(tmp_path)
    (published,) = ingest_source(store, path, LAYERS["temperature-2m"])
    # 2026-11-14 in the Julian calendar is 2026-11-27 in ours; the value is 12 hours on.
    assert published.frame.time == T0


def test_unit_mistake_is_refused_with_the_reason(tmp_path: Path) -> None:
    """Kelvin labelled degC: the bulk of the field lies far outside any air temperature."""
    path = tmp_path / "t2m.nc"
    _write_cf_temperature(path, units="degC")
    store, _ = _store(tmp_path)
    with pytest.raises(IngestError, match=r"implausible for temperature-2m in degC: 100% .* median 27\d"):
        ingest_source(store, path, LAYERS["temperature-2m"])
    assert not store.load_catalog("temperature-2m").frames


def test_radar_geotiff_band_scale_and_offset(tmp_path: Path, live_server_for) -> None:
    """A radar composite stored as uint8 codes with GDAL band scale 0.5 and offset -32, nodata 255."""
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 150, (300, 400)).astype(np.uint8)
    codes[:, :40] = 255
    path = tmp_path / "composite_20261127-120000.tif"
    transform = from_origin(-100.0, 45.0, 0.01, 0.01)
    with rasterio.open(path, "w", driver="GTiff", width=400, height=300, count=1, dtype="uint8", crs="EPSG:4326",
                       transform=transform, nodata=255) as out:
        out.write(codes, 1)
        out.scales, out.offsets = (0.5,), (-32.0,)
        out.units = ("dBZ",)
    dbz = codes * 0.5 - 32.0
    dbz[codes == 255] = np.nan
    result, _ = _served(tmp_path, live_server_for, path, "reflectivity", Truth(T0, dbz, CRS.from_epsg(4326), transform))
    assert result.points > 100 and result.fraction >= 0.99, result
    assert result.holes == 0 and result.spurious == 0 and result.empty_checked > 0, result


@pytest.mark.parametrize(
    ("crs", "west", "east"),
    [("EPSG:3832", 130.0, -150.0), ("EPSG:4326", 120.0, -120.0)],
    ids=["mercator-lon0-150", "lonlat-120-to-240"],
)
def test_grid_across_the_antimeridian_keeps_both_sides(tmp_path: Path, live_server_for, crs: str, west: float, east: float) -> None:
    from pyproj import Transformer

    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    if crs == "EPSG:4326":
        x0, y0, res, cols, rows = 120.0, 60.0, 0.25, 480, 200
    else:
        (x0, y0), (x1, _) = to_crs.transform(130, 60), to_crs.transform(-150, 10)
        res = 10000.0
        cols, rows = int((x1 - x0) / res), int((y0 - to_crs.transform(130, 10)[1]) / res)
    values = (20 + 5 * np.sin(np.arange(cols) / 17.0)[None, :] + np.arange(rows)[:, None] * 0.02).astype(np.float32)
    transform = from_origin(x0, y0, res, res)
    path = tmp_path / "pacific_20261127-120000.tif"
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32", crs=crs, transform=transform) as out:
        out.write(values, 1)
    result, published = _served(tmp_path, live_server_for, path, "temperature-2m", Truth(T0, values.astype(np.float64), CRS.from_user_input(crs), transform), run=T0)
    bounds = published[0].frame.bounds
    assert bounds[0] == pytest.approx(west, abs=0.1) and bounds[2] == pytest.approx(east, abs=0.1), bounds
    assert result.points > 150 and result.fraction >= 0.99, result
    assert result.holes == 0, result


def test_cf_rotated_pole_netcdf(tmp_path: Path, live_server_for) -> None:
    """A COSMO/ICON-LAM style grid: rlat/rlon with a rotated_latitude_longitude grid_mapping
    (which GDAL reads as no CRS; the CF attributes are read by pyproj)."""
    rlat, rlon = np.arange(-10, 10.01, 0.1), np.arange(-15, 15.01, 0.1)
    path = tmp_path / "cosmo_t2m.nc"
    kelvin = 280 + 5 * np.sin(rlon / 3)[None, :] + rlat[:, None] * 0.3
    with netCDF4.Dataset(path, "w") as nc:
        nc.Conventions = "CF-1.8"
        for name, size in (("time", 1), ("rlat", rlat.size), ("rlon", rlon.size)):
            nc.createDimension(name, size)
        t = nc.createVariable("time", "f8", ("time",))
        t.units, t.standard_name = "hours since 2026-11-27 00:00:00", "time"
        t[:] = [12]
        for name, values, axis in (("rlat", rlat, "Y"), ("rlon", rlon, "X")):
            var = nc.createVariable(name, "f8", (name,))
            var.units, var.standard_name, var.axis = "degrees", f"grid_{'latitude' if axis == 'Y' else 'longitude'}", axis
            var[:] = values
        pole = nc.createVariable("rotated_pole", "c")
        pole.grid_mapping_name = "rotated_latitude_longitude"
        pole.grid_north_pole_latitude, pole.grid_north_pole_longitude = 40.0, -170.0
        var = nc.createVariable("t2m", "f4", ("time", "rlat", "rlon"))
        var.units, var.standard_name, var.grid_mapping = "K", "air_temperature", "rotated_pole"
        var[0] = kelvin
    crs = CRS.from_cf({"grid_mapping_name": "rotated_latitude_longitude", "grid_north_pole_latitude": 40.0, "grid_north_pole_longitude": -170.0})
    # netCDF rows run south to north; the truth is north up.
    truth = Truth(T0, (kelvin - 273.15)[::-1], crs, Affine(0.1, 0, -15.05, 0, -0.1, 10.05))
    result, published = _served(tmp_path, live_server_for, path, "temperature-2m", truth)
    west, south, east, north = published[0].frame.bounds
    assert 37 < south < 39 and 59 < north < 61 and west < -17 and east > 37  # centred on 50 N 10 E
    assert result.points > 100 and result.fraction >= 0.99, result
    assert result.holes == 0, result
