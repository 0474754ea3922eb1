"""Writers of sample files in the formats NOAA (and others) publish.

The demo and the tests use these to exercise the *real* ingest path: every
file is written by GDAL's GRIB driver (``CreateCopy`` from an in-memory
GeoTIFF), by the netCDF4 library, or by GDAL's GTiff driver -- never mocked.
Values come from :mod:`ingest.demo.synthetic` unless given, so the content is
**synthetic**; only the containers mimic the real products.

What GDAL 3.10 reports when reading the files back (``rasterio.open``), per
message.  ``GRIB_REF_TIME`` / ``GRIB_VALID_TIME`` / ``GRIB_FORECAST_SECONDS``
are plain integer seconds (Unix time) in GDAL 3.10; older releases appended
units (``"  1714564800 sec UTC"``, ``"3600 sec"``), so parse with
``int(value.split()[0])``.  (If a wgrib2 ``.idx`` sidecar sits next to a GRIB
file, GDAL >= 3.4 may take band descriptions and times from it; open with
``USE_IDX=NO`` to always get the metadata below.)

MRMS (:func:`write_mrms_grib2`), one message, PNG packing, decimal scale 1::

    GRIB_DISCIPLINE   209        (no "(name)" suffix: GDAL has no name for 209)
    GRIB_ELEMENT      MergedReflectivityQCComposite   (PrecipRate, ...)
    GRIB_SHORT_NAME   500-GPML   (level 00.50 = 500 m above MSL; PrecipRate: 0-GPML)
    GRIB_UNIT         [dBZ]      (PrecipRate: [mm/hr])
    GRIB_COMMENT      Composite Reflectivity Mosaic (optimal method) [dBZ]
    GRIB_IDS          CENTER=161(US-OAR) SUBCENTER=0 MASTER_TABLE=2 LOCAL_TABLE=0
                      SIGNF_REF_TIME=3(Observation_time) REF_TIME=...Z
                      PROD_STATUS=0(Operational) TYPE=0(Analysis)
    GRIB_PDS_PDTN     0
    GRIB_REF_TIME == GRIB_VALID_TIME == valid, GRIB_FORECAST_SECONDS 0
    description       500[m] GPML="Specific altitude above mean sea level"

  The element names come from GDAL's ``grib2_table_4_2_local_MRMS.csv``, which
  is selected by centre 161 -- discipline 209 alone is not enough.  The CRS
  is geographic on the IAU-1965 ellipsoid (a=6378160, b=6356775), what GDAL
  makes of MRMS's ``shapeOfEarth=2`` (written here as shape 7 with those
  axes), so it is *not* EPSG:4326.  Longitudes are stored 230..300 in the
  GRIB but GDAL reports -130..-60.  The -999 / -99 (PrecipRate -3 / -1) codes
  come back as ordinary values: **GDAL reports no nodata** for these files,
  exactly as for real MRMS; the reader must mask them itself.  A ``.gz``
  file opens through ``/vsigzip/<path>`` (or rasterio ``gzip://<path>``).

HRRR (:func:`write_hrrr_grib2`), Lambert conformal (GDAL CRS
``+proj=lcc +lat_0=38.5 +lon_0=-97.5 +lat_1=38.5 +lat_2=38.5 +R=6371229``),
GRIB_DISCIPLINE ``0(Meteorological)`` (number plus name, unlike MRMS's bare
``209``), GRIB_IDS ``CENTER=7(US-NCEP) SUBCENTER=0 MASTER_TABLE=2 LOCAL_TABLE=0
SIGNF_REF_TIME=1(Start_of_Forecast) REF_TIME=... PROD_STATUS=0(Operational)
TYPE=1(Forecast)``, generating process 83, complex packing with second-order
spatial differencing.  Bands in order (GRIB_COMMENT in brackets):

    band  GRIB_ELEMENT  GRIB_SHORT_NAME  GRIB_UNIT (default / NORMALIZE_UNITS=NO)
    1     REFC          0-EATM           [dB]        (Maximum / Composite radar reflectivity [dB])
    2     TMP           50000-ISBL       [C] / [K]   (Temperature [C]; distractor)
    3     TMP           2-HTGL           [C] / [K]   (Temperature [C])
    4     UGRD          10-HTGL          [m/s]       (u-component of wind [m/s])
    5     VGRD          10-HTGL          [m/s]       (v-component of wind [m/s])
    6     UGRD          80-HTGL          [m/s]       (u-component of wind [m/s]; distractor)

  Band descriptions look like ``2[m] HTGL="Specified height level above
  ground"`` and ``0[-] EATM="Entire Atmosphere"``.

  GRIB_REF_TIME = ref_time, GRIB_VALID_TIME = ref_time + lead,
  GRIB_FORECAST_SECONDS = lead.  Temperatures are written in Kelvin and,
  because ``GRIB_NORMALIZE_UNITS`` defaults to YES, GDAL *returns them in
  degrees Celsius*; set ``GRIB_NORMALIZE_UNITS=NO`` to get Kelvin.

GFS (:func:`write_gfs_grib2`), lat/lon on a sphere of radius 6371229,
longitudes 0..359.75 in the file: TMP 2-HTGL ([C] by default), UGRD 10-HTGL,
VGRD 10-HTGL ([m/s]), same discipline / IDS / time tags as HRRR, generating
process 96.  GDAL (>= 3.4) re-wraps the grid to -180..180 when
reading: the transform origin is ``-180 - dx/2`` and column 0 holds
longitude 180 (= -180); ``GRIB_ADJUST_LONGITUDE_RANGE=NO`` keeps 0..360.  The
bounds extend half a cell beyond the poles (north = 90 + dy/2).

NetCDF (:func:`write_netcdf_cf`): GDAL's netCDF driver reads the CRS from the
CF ``grid_mapping`` variable, the transform from the x/y (lat/lon) coordinate
variables (flipping bottom-up data to north-up), nodata from ``_FillValue``
and the time as band metadata ``NETCDF_DIM_time`` (value in the units of the
``time`` variable, here Unix seconds) plus dataset metadata
``time#units = seconds since 1970-01-01 00:00:00``.
"""

from __future__ import annotations

import gzip as _gzip
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.io import MemoryFile

from . import synthetic

__all__ = [
    "GFS_CRS",
    "GFS_MESSAGES",
    "HRRR_CRS",
    "HRRR_FIRST_POINT",
    "HRRR_MESSAGES",
    "HRRR_SHAPE",
    "MRMS_CRS",
    "MRMS_FILENAME_RE",
    "MRMS_PRODUCTS",
    "GribMessage",
    "MrmsProduct",
    "gfs_transform",
    "hrrr_transform",
    "mrms_filename",
    "parse_mrms_filename",
    "write_gfs_grib2",
    "write_hrrr_grib2",
    "write_mrms_grib2",
]

Bounds = tuple[float, float, float, float]

# --------------------------------------------------------------------------
# Shared GRIB2 writing
# --------------------------------------------------------------------------


def transform_from_bounds(bounds: Bounds, width: int, height: int) -> Affine:
    """North-up transform for cell-edge ``bounds`` (rasterio's ``from_bounds``
    without affine 3's PendingDeprecationWarning)."""
    west, south, east, north = bounds
    return Affine((east - west) / width, 0.0, west, 0.0, -(north - south) / height, north)


def as_utc(t: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _ids(center: int, subcenter: int, ref_time: datetime, signf_ref_time: int, data_type: int) -> str:
    rt = as_utc(ref_time).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"CENTER={center} SUBCENTER={subcenter} MASTER_TABLE=2 SIGNF_REF_TIME={signf_ref_time} "
        f"REF_TIME={rt} PROD_STATUS=0 TYPE={data_type}"
    )


def _lead_units(lead: timedelta) -> tuple[int, int]:
    """(indicator of unit of time range, forecast time) for PDS template 4.0."""
    secs = lead.total_seconds()
    if secs < 0 or secs % 60 != 0:
        raise ValueError(f"lead must be a non-negative whole number of minutes, got {lead}")
    secs = int(secs)
    if secs % 3600 == 0:
        return 1, secs // 3600  # hours
    return 0, secs // 60  # minutes


def _pds_4_0(category: int, number: int, gen_type: int, gen_process: int, lead: timedelta,
             surface: int, surface_value: int, surface_scale: int = 0) -> str:
    """Assembled values of product definition template 4.0 (15 items).

    category, parameter number, type of generating process, background process,
    generating process id, cutoff hours, cutoff minutes, time-range unit,
    forecast time, first surface type/scale/value, second surface type/scale/value.
    """
    unit, ftime = _lead_units(lead)
    return (
        f"{category} {number} {gen_type} 0 {gen_process} 0 0 {unit} {ftime} "
        f"{surface} {surface_scale} {surface_value} 255 0 0"
    )


def _write_grib(path: Path, bands: Sequence[np.ndarray], crs: CRS | str, transform: Affine,
                options: Mapping[str, object], gzip: bool = False) -> Path:
    """Write ``bands`` (2-D arrays, row 0 = top) as consecutive GRIB2 messages."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.stack([np.asarray(b, dtype=np.float32) for b in bands])
    if not np.all(np.isfinite(arr)):
        raise ValueError("GRIB writers need finite values (use the product's missing codes instead of NaN)")
    count, height, width = arr.shape
    crs_wkt = crs.to_wkt() if isinstance(crs, CRS) else CRS.from_user_input(crs).to_wkt()
    opts = {k: str(v) for k, v in options.items()}
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=width, height=height, count=count, dtype="float32",
                      crs=crs_wkt, transform=transform) as ds:
            ds.write(arr)
        with mem.open() as src:
            if not gzip:
                tmp = path.with_name(path.name + ".part")
                rasterio.shutil.copy(src, str(tmp), driver="GRIB", **opts)
                os.replace(tmp, path)
                return path
            fd, tmp_name = tempfile.mkstemp(suffix=".grib2", dir=str(path.parent))
            os.close(fd)
            try:
                rasterio.shutil.copy(src, tmp_name, driver="GRIB", **opts)
                data = Path(tmp_name).read_bytes()
            finally:
                for leftover in (tmp_name, tmp_name + ".aux.xml"):
                    if os.path.exists(leftover):
                        os.remove(leftover)
    tmp = path.with_name(path.name + ".part")
    # mtime=0 keeps the bytes deterministic, like a reproducible build
    tmp.write_bytes(_gzip.compress(data, compresslevel=6, mtime=0))
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class GribMessage:
    """One message of a model file, as GDAL names it."""

    element: str  # GRIB_ELEMENT
    short_name: str  # GRIB_SHORT_NAME
    category: int
    number: int
    surface: int  # code table 4.5
    surface_value: int
    decimal_scale: int  # DECIMAL_SCALE_FACTOR used for packing
    unit: str  # unit of the values we write

    @property
    def key(self) -> str:
        """``"ELEMENT:SHORT_NAME"``, the key used in the ``fields`` mappings."""
        return f"{self.element}:{self.short_name}"


# --------------------------------------------------------------------------
# MRMS
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class MrmsProduct:
    category: int
    number: int
    level: str  # file-name level, e.g. "00.50" (= 0.50 km above MSL)
    unit: str
    missing: float  # MRMS table "missing" (for reflectivity: no echo)
    no_coverage: float


#: Discipline-209 category/parameter numbers from the MRMS GRIB2 table (same
#: numbers in GDAL's ``grib2_table_4_2_local_MRMS.csv``).
MRMS_PRODUCTS: dict[str, MrmsProduct] = {
    "MergedReflectivityQCComposite": MrmsProduct(10, 0, "00.50", "dBZ", -99.0, -999.0),
    "MergedReflectivityQComposite": MrmsProduct(11, 2, "00.50", "dBZ", -99.0, -999.0),
    "SeamlessHSR": MrmsProduct(8, 8, "00.00", "dBZ", -99.0, -999.0),
    "PrecipRate": MrmsProduct(6, 1, "00.00", "mm/hr", -1.0, -3.0),
    "RadarOnly_QPE_01H": MrmsProduct(6, 2, "00.00", "mm", -1.0, -3.0),
}

#: What GDAL makes of MRMS's ``shapeOfEarth=2`` (IAU 1965 oblate spheroid).
MRMS_CRS = CRS.from_proj4("+proj=longlat +a=6378160 +b=6356775 +no_defs")

MRMS_FILENAME_RE = re.compile(
    r"^MRMS_(?P<product>[A-Za-z0-9_]+?)_(?P<level>\d{2}\.\d{2})_(?P<stamp>\d{8}-\d{6})\.grib2(?:\.gz)?$"
)


def mrms_filename(product: str, level: str | None, valid: datetime) -> str:
    """``MRMS_{product}_{level}_{YYYYMMDD-HHMMSS}.grib2.gz`` as on s3://noaa-mrms-pds.

    ``level`` None picks the product's usual level ("00.50" for the composite,
    "00.00" for PrecipRate).
    """
    if level is None:
        level = MRMS_PRODUCTS[product].level
    return f"MRMS_{product}_{level}_{as_utc(valid):%Y%m%d-%H%M%S}.grib2.gz"


def parse_mrms_filename(name: str) -> tuple[str, str, datetime]:
    """Inverse of :func:`mrms_filename`: ``(product, level, valid)`` (UTC)."""
    m = MRMS_FILENAME_RE.match(Path(name).name)
    if not m:
        raise ValueError(f"not an MRMS file name: {name!r}")
    valid = datetime.strptime(m["stamp"], "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    return m["product"], m["level"], valid


def write_mrms_grib2(
    path: Path,
    dbz: np.ndarray,
    valid: datetime,
    bounds: Bounds = (-130.0, 20.0, -60.0, 55.0),
    product: str = "MergedReflectivityQCComposite",
    gzip: bool | None = None,
    packing: Literal["PNG", "SIMPLE_PACKING", "COMPLEX_PACKING"] = "PNG",
    north_first: bool = False,
) -> Path:
    """Write one MRMS-like GRIB2 message (optionally gzipped like NOAA's ``.grib2.gz``).

    ``dbz`` (the product's values; dBZ for reflectivity, mm/hr for
    PrecipRate) is a 2-D array on the regular lat/lon grid with cell edges
    ``bounds`` = (west, south, east, north), row 0 = north.  It is written
    with discipline 209, centre 161 (NOAA OAR), the product's MRMS
    category/parameter, surface "specific altitude above MSL" at the level of
    the file name (500 m for "00.50"), reference time = valid time (``valid``,
    seconds kept), forecast time 0, PNG packing with decimal scale factor 1
    (0.1 precision, so 0.5 dBZ steps and the -999 / -99 codes round-trip
    exactly), IAU-1965 ellipsoid.  ``gzip`` None means "if ``path`` ends with
    .gz".  See the module docstring for what GDAL reports.

    GDAL writes rows south to north (scanning mode 0x40). Real MRMS files
    scan north to south (0x00); ``north_first`` rewrites GDAL's message that
    way (PNG packing only): rows flipped, first and last latitudes swapped.
    ``packing`` other than PNG gives GDAL's simple or complex packing instead.
    """
    if product not in MRMS_PRODUCTS:
        raise ValueError(f"unknown MRMS product {product!r}; known: {sorted(MRMS_PRODUCTS)}")
    p = MRMS_PRODUCTS[product]
    dbz = np.asarray(dbz)
    if dbz.ndim != 2:
        raise ValueError("dbz must be 2-D")
    if gzip is None:
        gzip = str(path).endswith(".gz")
    height, width = dbz.shape
    transform = transform_from_bounds(bounds, width, height)
    height_m = int(round(float(p.level) * 1000))
    options = {
        "DISCIPLINE": 209,
        "IDS": _ids(161, 0, valid, signf_ref_time=3, data_type=0),
        "PDS_PDTN": 0,
        "PDS_TEMPLATE_ASSEMBLED_VALUES": _pds_4_0(p.category, p.number, 0, 0, timedelta(0), 102, height_m),
        "DATA_ENCODING": packing,
        "DECIMAL_SCALE_FACTOR": 1,
    }
    if not north_first:
        return _write_grib(Path(path), [dbz], MRMS_CRS, transform, options, gzip=bool(gzip))
    if packing != "PNG":
        raise ValueError("north_first rewrites PNG-packed messages only")
    plain = Path(path).with_name(Path(path).name + ".south-first")
    try:
        _write_grib(plain, [dbz], MRMS_CRS, transform, options, gzip=False)
        data = _north_first(plain.read_bytes())
    finally:
        plain.unlink(missing_ok=True)
    tmp = Path(path).with_name(Path(path).name + ".part")
    tmp.write_bytes(_gzip.compress(data, compresslevel=6, mtime=0) if gzip else data)
    os.replace(tmp, path)
    return Path(path)


def _north_first(message: bytes) -> bytes:
    """One GDAL-written PNG-packed lat/lon GRIB2 message, rescanned north to south."""
    import cv2  # only this rewrite needs it

    sections, position = [], 16
    while message[position:position + 4] != b"7777":
        length = int.from_bytes(message[position:position + 4], "big")
        sections.append(bytearray(message[position:position + length]))
        position += length
    grid = next(s for s in sections if s[4] == 3)
    data = next(s for s in sections if s[4] == 7)
    if grid[71] != 0x40:
        raise ValueError(f"expected GDAL's south-to-north scanning mode 0x40, got {grid[71]:#x}")
    grid[46:50], grid[55:59] = grid[55:59], grid[46:50]  # La1 <-> La2
    grid[71] = 0x00
    cols, rows = int.from_bytes(grid[30:34], "big"), int.from_bytes(grid[34:38], "big")
    image = cv2.imdecode(np.frombuffer(bytes(data[5:]), np.uint8), cv2.IMREAD_UNCHANGED).reshape(rows, cols)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(image[::-1]))
    assert ok
    data[:] = (5 + len(png)).to_bytes(4, "big") + b"\x07" + png.tobytes()
    body = b"".join(bytes(s) for s in sections)
    total = 16 + len(body) + 4
    return message[:8] + total.to_bytes(8, "big") + body + b"7777"


# --------------------------------------------------------------------------
# HRRR
# --------------------------------------------------------------------------

#: HRRR CONUS grid as GDAL reports it.
HRRR_CRS = CRS.from_proj4(
    "+proj=lcc +lat_0=38.5 +lon_0=-97.5 +lat_1=38.5 +lat_2=38.5 +x_0=0 +y_0=0 +R=6371229 +units=m +no_defs"
)
HRRR_SHAPE: tuple[int, int] = (1059, 1799)
#: (lat, lon) of the south-west grid point (cell centre) of the real grid.
HRRR_FIRST_POINT = (21.138123, 237.280472)
HRRR_SPACING_M = 3000.0

HRRR_MESSAGES: tuple[GribMessage, ...] = (
    GribMessage("REFC", "0-EATM", 16, 196, 10, 0, 1, "dB"),
    GribMessage("TMP", "50000-ISBL", 0, 0, 100, 50000, 2, "K"),
    GribMessage("TMP", "2-HTGL", 0, 0, 103, 2, 2, "K"),
    GribMessage("UGRD", "10-HTGL", 2, 2, 103, 10, 2, "m/s"),
    GribMessage("VGRD", "10-HTGL", 2, 3, 103, 10, 2, "m/s"),
    GribMessage("UGRD", "80-HTGL", 2, 2, 103, 80, 2, "m/s"),
)


def hrrr_transform(shape: tuple[int, int] = HRRR_SHAPE) -> Affine:
    """Geotransform of an HRRR-like grid of ``shape`` with 3 km cells.

    Centred on the real grid's centre, so the full ``(1059, 1799)`` shape gives
    the real grid (first point 21.138123N, 237.280472E).
    """
    tr = Transformer.from_crs("EPSG:4326", HRRR_CRS, always_xy=True)
    lat0, lon0 = HRRR_FIRST_POINT
    x0, y0 = tr.transform(lon0 - 360.0, lat0)
    ny_full, nx_full = HRRR_SHAPE
    cx = x0 + (nx_full - 1) / 2 * HRRR_SPACING_M
    cy = y0 + (ny_full - 1) / 2 * HRRR_SPACING_M
    ny, nx = shape
    return Affine(HRRR_SPACING_M, 0.0, cx - nx / 2 * HRRR_SPACING_M, 0.0, -HRRR_SPACING_M, cy + ny / 2 * HRRR_SPACING_M)


def _cell_lonlat(crs: CRS, transform: Affine, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    ny, nx = shape
    if transform.b != 0 or transform.d != 0:
        raise ValueError("rotated transforms are not supported")
    xs, ys = np.meshgrid(transform.c + (np.arange(nx) + 0.5) * transform.a,
                         transform.f + (np.arange(ny) + 0.5) * transform.e)
    tr = Transformer.from_crs(crs, CRS.from_proj4("+proj=longlat +R=6371229 +no_defs"), always_xy=True)
    lon, lat = tr.transform(xs, ys)
    return np.asarray(lon), np.asarray(lat)


def _radar_on(lon: np.ndarray, lat: np.ndarray, valid_offset: timedelta, start: datetime, seed: int,
              res_deg: float = 0.03) -> np.ndarray:
    """Synthetic composite reflectivity sampled (nearest) at arbitrary points; -10 dBZ = no echo (model style).

    Over the CONUS the storms are the same systems as in the MRMS-like frames
    of the same seed at the same valid time (same placement area).
    """
    west, east = float(np.floor(lon.min())) - 1, float(np.ceil(lon.max())) + 1
    south, north = float(np.floor(lat.min())) - 1, float(np.ceil(lat.max())) + 1
    shape = (int(round((north - south) / res_deg)), int(round((east - west) / res_deg)))
    step = valid_offset if valid_offset > timedelta(0) else timedelta(minutes=5)
    steps = 2 if valid_offset > timedelta(0) else 1
    frame = None
    # coverage=False: a model has no radar-coverage holes
    for _, frame in synthetic.radar_sequence(start, steps=steps, step=step, shape=shape,
                                             bounds=(west, south, east, north), seed=seed, coverage=False):
        pass
    assert frame is not None
    dx = (east - west) / shape[1]
    dy = (north - south) / shape[0]
    j = np.clip(((lon - west) / dx).astype(np.int64), 0, shape[1] - 1)
    i = np.clip(((north - lat) / dy).astype(np.int64), 0, shape[0] - 1)
    out = frame[i, j]
    return np.where(out < -10.0, np.float32(-10.0), out).astype(np.float32)


def _model_fields(messages: Sequence[GribMessage], lon: np.ndarray, lat: np.ndarray, ref_time: datetime,
                  lead: timedelta, seed: int, given: Mapping[str, np.ndarray] | None,
                  with_radar: bool) -> list[np.ndarray]:
    given = dict(given or {})
    unknown = set(given) - {m.key for m in messages}
    if unknown:
        raise KeyError(f"unknown field keys {sorted(unknown)}; expected some of {[m.key for m in messages]}")
    valid = as_utc(ref_time) + lead
    cache: dict[str, np.ndarray] = {}

    def synth(m: GribMessage) -> np.ndarray:
        if m.key == "REFC:0-EATM" and with_radar:
            return _radar_on(lon, lat, lead, as_utc(ref_time), seed)
        if m.element == "TMP":
            if "t2" not in cache:
                cache["t2"] = synthetic.temperature_field(valid, lon=lon, lat=lat, seed=seed)
            # 500 hPa: ~35 K colder than the surface
            return cache["t2"] - (35.0 if m.surface == 100 else 0.0)
        if m.element in ("UGRD", "VGRD"):
            if "uv" not in cache:
                cache["u"], cache["v"] = synthetic.wind_components(valid, lon=lon, lat=lat, seed=seed)
                cache["uv"] = cache["u"]
            comp = cache["u"] if m.element == "UGRD" else cache["v"]
            # wind increases with height (power law, alpha ~ 1/7)
            return comp * np.float32((m.surface_value / 10.0) ** (1 / 7))
        raise KeyError(m.key)

    out = []
    for m in messages:
        arr = given.get(m.key)
        if arr is None:
            arr = synth(m)
        arr = np.asarray(arr, dtype=np.float32)
        if arr.shape != lon.shape:
            raise ValueError(f"field {m.key} has shape {arr.shape}, grid is {lon.shape}")
        out.append(arr)
    return out


def _model_options(messages: Sequence[GribMessage], ref_time: datetime, lead: timedelta, gen_process: int) -> dict:
    options: dict[str, object] = {
        "DISCIPLINE": 0,
        "IDS": _ids(7, 0, ref_time, signf_ref_time=1, data_type=1),
        "PDS_PDTN": 0,
        "DATA_ENCODING": "COMPLEX_PACKING",
        "SPATIAL_DIFFERENCING_ORDER": 2,
        # our temperatures are in K; GDAL's writer assumes C for category 0 otherwise
        "INPUT_UNIT": "K",
    }
    for b, m in enumerate(messages, start=1):
        options[f"BAND_{b}_PDS_TEMPLATE_ASSEMBLED_VALUES"] = _pds_4_0(
            m.category, m.number, 2, gen_process, lead, m.surface, m.surface_value
        )
        options[f"BAND_{b}_DECIMAL_SCALE_FACTOR"] = m.decimal_scale
    return options


def write_hrrr_grib2(
    path: Path,
    ref_time: datetime,
    lead: timedelta,
    fields: dict[str, np.ndarray] | None = None,
    shape: tuple[int, int] = HRRR_SHAPE,
    seed: int = 0,
) -> Path:
    """Write an HRRR-like multi-message GRIB2 (``wrfsfcf``-style) on the Lambert grid.

    Messages, in order (keys of ``fields`` are ``"ELEMENT:SHORT_NAME"``):
    ``REFC:0-EATM`` (dBZ), ``TMP:50000-ISBL`` (K, distractor), ``TMP:2-HTGL``
    (K), ``UGRD:10-HTGL``, ``VGRD:10-HTGL`` (m/s), ``UGRD:80-HTGL`` (m/s,
    distractor).  Arrays are (ny, nx) with row 0 = north edge of the grid.
    Missing fields are synthesised (REFC from :func:`synthetic.radar_sequence`
    at ``lead`` after ``ref_time`` with -10 dBZ where there is no echo,
    temperature / wind from :mod:`ingest.demo.synthetic` at the valid time).

    ``shape`` smaller than (1059, 1799) keeps 3 km cells centred on the real
    grid's centre (see :func:`hrrr_transform`).  Packing: complex packing
    with spatial differencing, decimal scale 1 for REFC (0.05 dB max error)
    and 2 for the rest (0.005).  Reference time, lead and valid time
    round-trip through GDAL (``GRIB_REF_TIME``, ``GRIB_FORECAST_SECONDS``,
    ``GRIB_VALID_TIME``); leads that are whole hours are coded in hours,
    otherwise in minutes (as the HRRR sub-hourly files do).
    """
    shape = (int(shape[0]), int(shape[1]))
    transform = hrrr_transform(shape)
    lon, lat = _cell_lonlat(HRRR_CRS, transform, shape)
    bands = _model_fields(HRRR_MESSAGES, lon, lat, ref_time, lead, seed, fields, with_radar=True)
    options = _model_options(HRRR_MESSAGES, ref_time, lead, gen_process=83)
    return _write_grib(Path(path), bands, HRRR_CRS, transform, options)


# --------------------------------------------------------------------------
# GFS
# --------------------------------------------------------------------------

GFS_CRS = CRS.from_proj4("+proj=longlat +R=6371229 +no_defs")
GFS_MESSAGES: tuple[GribMessage, ...] = (
    GribMessage("TMP", "2-HTGL", 0, 0, 103, 2, 2, "K"),
    GribMessage("UGRD", "10-HTGL", 2, 2, 103, 10, 2, "m/s"),
    GribMessage("VGRD", "10-HTGL", 2, 3, 103, 10, 2, "m/s"),
)


def gfs_transform(shape: tuple[int, int] = (721, 1440)) -> Affine:
    """Transform of a GFS-like global grid as *written*: cell centres at
    longitudes 0 .. 360-dx and latitudes 90 .. -90 (both poles included)."""
    ny, nx = shape
    dx = 360.0 / nx
    dy = 180.0 / (ny - 1)
    return Affine(dx, 0.0, -dx / 2, 0.0, -dy, 90.0 + dy / 2)


def write_gfs_grib2(
    path: Path,
    ref_time: datetime,
    lead: timedelta,
    shape: tuple[int, int] = (721, 1440),
    fields: dict[str, np.ndarray] | None = None,
    seed: int = 0,
) -> Path:
    """Write a GFS-like ``pgrb2``-style GRIB2: TMP 2 m (K), UGRD / VGRD 10 m (m/s).

    Global regular lat/lon grid, 0.25 deg for the default ``(721, 1440)``
    (any ``(ny, nx)``, e.g. ``(181, 360)`` for 1 deg), longitudes 0..360-dx
    as in NOAA's files, latitudes 90..-90.  ``fields`` arrays (keys
    ``"TMP:2-HTGL"``, ``"UGRD:10-HTGL"``, ``"VGRD:10-HTGL"``) are laid out
    like that (column 0 = 0E, row 0 = 90N).  GDAL re-wraps to -180..180 when
    reading (see the module docstring).
    """
    shape = (int(shape[0]), int(shape[1]))
    transform = gfs_transform(shape)
    ny, nx = shape
    lon1 = np.arange(nx) * (360.0 / nx)
    lat1 = 90.0 - np.arange(ny) * (180.0 / (ny - 1))
    lon, lat = np.meshgrid(lon1, lat1)
    bands = _model_fields(GFS_MESSAGES, lon, lat, ref_time, lead, seed, fields, with_radar=False)
    options = _model_options(GFS_MESSAGES, ref_time, lead, gen_process=96)
    return _write_grib(Path(path), bands, GFS_CRS, transform, options)
