"""The real files of ../shared/data, each with the layer it belongs to and its truth
read apart from wxtiles' decoder (GDAL with its unit normalisation off, netCDF4,
h5py), units converted here. Used by tests/ingest/test_real_files.py and
benchmarks/real_files.py."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS

from tests.ingest.fidelity import Case, Truth

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
GRIDS = DATA / "grids"
MRMS = DATA / "mrms-20190610"


def _grib_truth(path: Path, bands: tuple[int, ...], convert) -> list[Truth]:  # noqa: ANN001 - array -> array
    with rasterio.Env(GRIB_NORMALIZE_UNITS="NO"), rasterio.open(path) as src:
        grids = [src.read(b, masked=True).filled(np.nan).astype(np.float64) for b in bands]
        values = np.hypot(*grids) if len(grids) == 2 else grids[0]
        valid = int(src.tags(bands[0])["GRIB_VALID_TIME"].split()[0])
        return [Truth(datetime.fromtimestamp(valid, tz=timezone.utc), convert(values), CRS.from_wkt(src.crs.to_wkt()), src.transform)]


def _netcdf_truth(path: Path, variable: str, convert) -> list[Truth]:  # noqa: ANN001
    import netCDF4

    with netCDF4.Dataset(path) as nc:
        var = nc.variables[variable]  # netCDF4 applies scale_factor, add_offset and masks fill values
        lat = np.asarray(nc.variables["lat"][:], dtype=np.float64)
        lon = np.asarray(nc.variables["lon"][:], dtype=np.float64)
        times = netCDF4.num2date(nc.variables["time"][:], nc.variables["time"].units, only_use_cftime_datetimes=False)
        data = np.ma.filled(var[:].astype(np.float64), np.nan)
    lon = np.where(lon >= 180.0, lon - 360.0, lon)  # 0..360 longitudes, on the -180..180 a map uses
    # Regular axes: a north-up geotransform on cell edges.
    dlon, dlat = lon[1] - lon[0], lat[1] - lat[0]
    if dlat > 0:
        data, lat, dlat = data[:, ::-1], lat[::-1], -dlat
    transform = Affine(dlon, 0, lon[0] - dlon / 2, 0, dlat, lat[0] - dlat / 2)
    return [Truth(t.replace(tzinfo=timezone.utc), convert(data[k]), CRS.from_epsg(4326), transform) for k, t in enumerate(times)]


def _mrms_truth(path: Path) -> list[Truth]:
    truth = _grib_truth(path, (1,), lambda v: v)[0]
    values = truth.values.copy()
    values[values == -3] = np.nan  # MRMS PrecipRate: -3 = no coverage (see ../shared/data/README.md)
    return [Truth(truth.time, values, truth.crs, truth.transform)]


def _odim_truth(path: Path) -> list[Truth]:
    import h5py

    with h5py.File(path, "r", locking=False) as h5:
        what = h5["dataset1/data1/what"].attrs
        raw = h5["dataset1/data1/data"][()].astype(np.float64)
        values = raw * what["gain"] + what["offset"]  # NaN raw values (no coverage) stay NaN
        crs = CRS.from_proj4(h5["where"].attrs["projdef"])
        stamp = "".join(v.decode() if isinstance(v, bytes) else str(v) for v in (h5["what"].attrs["date"], h5["what"].attrs["time"]))
        when = datetime.strptime(stamp, "%Y%m%d%H%M%S")
    # MeteoSwiss' CCS4 grid (Swiss LV03, 1 km): outer edges x 255..965 km, y -160..480 km, as
    # MeteoSwiss publishes it (the file's corners are the corner pixels' centres).
    return [Truth(when.replace(tzinfo=timezone.utc), values, crs, Affine(1000.0, 0.0, 255_000.0, 0.0, -1000.0, 480_000.0))]


def kelvin(v: np.ndarray) -> np.ndarray:
    return v - 273.15


def same(v: np.ndarray) -> np.ndarray:
    return v


GFS_1 = GRIDS / "gfs_1p0deg_20230601T12Z_f000_wind10m.grib2"
GFS_25 = GRIDS / "gfs_2p5deg_20110110T12Z_f120_343fields.grib2"
ERA5 = GRIDS / "era5_europe_0p25_t2m_20170101T12Z.grib1"
HIRLAM = GRIDS / "dmi_hirlam_rotated_ll_t2m_20060726T12Z.grib1"
NCEP = GRIDS / "ncep_reanalysis_air_sig995_small_20140224-28.nc"
REDUCED = GRIDS / "ecmwf_reduced_gaussian_N48_u10_20171018T12Z.grib1"
ODIM = GRIDS / "meteoswiss_radar_rainrate_odim_somerc_20240227T0950Z.h5"
MRMS_FIRST = MRMS / "PrecipRate_00.00_20190610-000000.grib2"

CASES: list[Case] = [
    Case("GFS 1 deg 10 m wind (GRIB2, 0..360)", str(GFS_1), "wind-speed-10m", lambda: _grib_truth(GFS_1, (1, 2), same)),
    Case("GFS 2.5 deg 2 m temperature (GRIB2, K)", str(GFS_25), "temperature-2m", lambda: _grib_truth(GFS_25, (217,), kelvin)),
    Case("GFS 2.5 deg 10 m wind (GRIB2)", str(GFS_25), "wind-speed-10m", lambda: _grib_truth(GFS_25, (222, 223), same)),
    Case("ERA5 2 m temperature (GRIB1, K labelled [C])", str(ERA5), "temperature-2m", lambda: _grib_truth(ERA5, (1,), kelvin)),
    Case("HIRLAM 2 m temperature (GRIB1, rotated pole)", str(HIRLAM), "temperature-2m", lambda: _grib_truth(HIRLAM, (1,), kelvin)),
    Case("NCEP reanalysis air temperature (NetCDF, packed int16, COARDS)", str(NCEP), "temperature-2m", lambda: _netcdf_truth(NCEP, "air", kelvin)),
    Case("MRMS PrecipRate (GRIB2, PNG-packed)", str(MRMS_FIRST), "precip-rate", lambda: _mrms_truth(MRMS_FIRST)),
    Case("MeteoSwiss radar rain rate (ODIM_H5, Swiss oblique Mercator)", str(ODIM), "precip-rate", lambda: _odim_truth(ODIM)),
]
