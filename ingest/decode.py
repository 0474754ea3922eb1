"""Open a source file and pick the field a layer needs, in the layer's units.

Handles GeoTIFF, CF NetCDF and GRIB2 (plain or gzipped, as MRMS publishes it)
through GDAL. The result is a float32 grid in its own CRS: NaN where there is no
coverage, -inf where a radar saw no echo. PNG-packed GRIB2 fields (MRMS) skip
the float grid: their packed integers go straight to the layer's codes
(:mod:`ingest.grib_png`), with GDAL still giving the CRS, transform and times.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from ingest import grib_png
from ingest.errors import IngestError
from ingest.units import canonical_unit, convert
from tileserver.layers import Layer
from tileserver.timeutil import TimeFormatError, checked_utc, format_utc, parse_utc, utcnow

# GDAL options that make GRIB decoding predictable: units normalised (K -> degC),
# global 0..360 grids rewrapped to -180..180, and a stray wgrib2 .idx beside
# the file ignored (the messages themselves are the truth).
GDAL_READ_OPTIONS = {"GRIB_NORMALIZE_UNITS": "YES", "GRIB_ADJUST_LONGITUDE_RANGE": "YES", "USE_IDX": "NO"}

MAX_OBSERVATION_LEAD = timedelta(hours=1)
_MRMS_STAMP = re.compile(r"(\d{8})[-_](\d{6})")
_CF_TIME_UNITS = re.compile(r"^\s*(seconds?|minutes?|hours?|days?)\s+since\s+(.+?)\s*$", re.IGNORECASE)


# Python's warning filters are process-wide and catch_warnings is not thread-safe:
# a thread leaving its block restores the filters another thread is still inside
# (concurrent ingests then saw warnings they had silenced). Every such block in
# ingest takes this lock.
_WARNING_FILTERS = threading.RLock()


@contextlib.contextmanager
def quiet_georeference() -> Iterator[None]:
    """No NotGeoreferencedWarning inside: we report a missing georeference ourselves."""
    with _WARNING_FILTERS, warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


@dataclass(frozen=True)
class SourceField:
    # rows x cols: float32 physical values, or, when ``encoded``, already the
    # layer's codes (the PNG-packed GRIB2 path never makes a float grid).
    values: np.ndarray
    crs: CRS
    transform: Affine
    time: datetime  # valid time, UTC
    run: datetime | None  # model reference time
    description: str  # which message or variable it came from
    encoded: bool = False


BandChoice = tuple[int, ...]


def parse_band_choice(text: str) -> BandChoice:
    """``--band 3`` or, for vector layers, ``--band 5,6`` (U and V)."""
    try:
        bands = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise IngestError(f"--band {text!r}: give a 1-based band number, or two for U,V components") from None
    if not 1 <= len(bands) <= 2 or min(bands) < 1:
        raise IngestError(f"--band {text!r}: give a 1-based band number, or two for U,V components")
    return bands


@contextlib.contextmanager
def open_source(path: Path) -> Iterator[tuple[rasterio.DatasetReader, BinaryIO]]:
    """Open a source file for GDAL and as bytes; gzipped files (MRMS) are inflated in memory first.

    Inflating with Python's gzip rather than GDAL's /vsigzip/ turns a truncated
    download into a clear "truncated gzip" instead of a zlib error code.
    """
    if path.suffix != ".gz":
        with rasterio.open(path) as src, path.open("rb") as stream:
            yield src, stream
        return
    try:
        with gzip.open(path) as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise IngestError(f"truncated or corrupt gzip file ({_first_line(exc)})") from None
    if not data:
        raise IngestError("is an empty gzip file")
    with MemoryFile(data, filename=path.stem) as memory, memory.open() as src:
        yield src, io.BytesIO(data)


def read_field(
    path: Path,
    layer: Layer,
    *,
    time: datetime | None = None,
    run: datetime | None = None,
    band: BandChoice | None = None,
) -> SourceField:
    if path.is_dir():
        raise IngestError("is a directory, not a file")
    if not path.is_file():
        raise IngestError("no such file")
    if path.stat().st_size == 0:
        raise IngestError("is empty")
    from ingest import odim  # here, not at the top: odim builds on this module's SourceField

    if odim.is_odim(path):  # GDAL's HDF5 driver misplaces ODIM grids and ignores their gain and codes
        return odim.read_field(path, layer, time=time, run=run, band=band)
    try:
        # We report a missing georeference ourselves, in one line.
        with quiet_georeference(), rasterio.Env(**GDAL_READ_OPTIONS):
            return _read(path, layer, time, run, band)
    except RasterioError as exc:
        if "not recognized as being in a supported file format" in str(exc):
            raise IngestError("unsupported format: not a GeoTIFF, NetCDF or GRIB2 file GDAL can read") from None
        raise IngestError(f"unreadable: {_first_line(exc)}") from None
    except (MemoryError, OSError, EOFError) as exc:
        raise IngestError(f"unreadable: {_first_line(exc)}") from None


def _read(path: Path, layer: Layer, time: datetime | None, run: datetime | None, band: BandChoice | None) -> SourceField:
    with open_source(path) as (src, stream):
        if src.subdatasets and src.count == 0:
            subdataset = _pick_subdataset(src.subdatasets, layer, band is not None)
            with rasterio.open(subdataset) as sub:
                return _read_dataset(sub, None, path, layer, time, run, band)
        return _read_dataset(src, stream, path, layer, time, run, band)


def _pick_subdataset(names: list[str], layer: Layer, explicit: bool) -> str:
    by_variable = {name.rsplit(":", 1)[-1]: name for name in names}
    for wanted in layer.selector.netcdf_names:
        if wanted in by_variable:
            return by_variable[wanted]
    for name in names:
        with rasterio.open(name) as sub:
            standard = sub.tags().get(f"{name.rsplit(':', 1)[-1]}#standard_name") or sub.tags(1).get("standard_name")
            if standard in layer.selector.netcdf_names:
                return name
    variables = ", ".join(by_variable)
    raise IngestError(f"no variable for layer {layer.id} (looked for {', '.join(layer.selector.netcdf_names)}; file has {variables})")


def _read_dataset(
    src: rasterio.DatasetReader, stream: BinaryIO | None, path: Path, layer: Layer,
    time: datetime | None, run: datetime | None, band: BandChoice | None,
) -> SourceField:
    if src.crs is None:
        raise IngestError("has no coordinate reference system (not georeferenced)")
    if src.transform.is_identity:
        raise IngestError("has no geotransform (not georeferenced)")
    if src.transform.b != 0 or src.transform.d != 0:
        raise IngestError("has a rotated grid, which wxtiles does not ingest")
    if band is not None and len(band) == 2 and layer.selector.components is None:
        raise IngestError(f"two bands (U,V) only make sense for a vector layer; {layer.id} takes one")
    bands = band or _select_bands(src, layer)
    for index in bands:
        if index > src.count:
            raise IngestError(f"has {src.count} bands; band {index} does not exist")
    codes = _read_png_codes(src, stream, bands[0], layer) if len(bands) == 1 else None
    if codes is not None:
        values = codes
    else:
        grids = [_read_band(src, index, layer) for index in bands]
        if len(grids) == 2:
            values = np.hypot(grids[0], grids[1]).astype(np.float32)
        else:
            values = grids[0]
    values, transform = _normalise_longitudes(values, src.transform, src.crs)
    if codes is None:
        values = _clean(values, layer)
    valid, reference = _frame_times(src, bands[0], path)
    valid = time or valid
    if valid is None:
        raise IngestError("carries no time (GRIB times, NetCDF time or a stamp in the file name); pass --time")
    try:
        valid = checked_utc(valid)
        run = checked_utc(run or reference or valid) if layer.kind == "forecast" else None
    except TimeFormatError as exc:
        raise IngestError(f"has an impossible time: {exc}") from None
    if layer.kind == "observed" and valid > utcnow() + MAX_OBSERVATION_LEAD:
        # An observation from the future is a wrong clock or a typo; taking it
        # would make retention drop every real frame as "older than the newest".
        raise IngestError(f"observation time {format_utc(valid)} is in the future; check --time or the file")
    description = ", ".join(_describe(src, index) for index in bands)
    return SourceField(values, src.crs, transform, valid, run, description, encoded=codes is not None)


def _select_bands(src: rasterio.DatasetReader, layer: Layer) -> BandChoice:
    if src.driver != "GRIB":
        if src.count == 1:
            return (1,)
        raise IngestError(f"has {src.count} bands; say which with --band")
    selector = layer.selector
    wanted = selector.components or selector.elements
    found: dict[str, int] = {}
    for index in range(1, src.count + 1):
        tags = src.tags(index)
        element = tags.get("GRIB_ELEMENT", "")
        level = tags.get("GRIB_SHORT_NAME", "")
        if element in wanted and element not in found and (not selector.levels or level in selector.levels):
            found[element] = index
    if selector.components:
        if all(c in found for c in selector.components):
            return tuple(found[c] for c in selector.components)
    else:
        for element in selector.elements:  # in order of preference
            if element in found:
                return (found[element],)
    at = f" at {'/'.join(selector.levels)}" if selector.levels else ""
    raise IngestError(f"no GRIB message for layer {layer.id} ({' and '.join(wanted)}{at}) among its {src.count} messages; pick one with --band")


def _read_band(src: rasterio.DatasetReader, index: int, layer: Layer) -> np.ndarray:
    masked = src.read(index, masked=True, out_dtype="float32")
    values = masked.filled(np.nan).astype(np.float32, copy=False)
    unit = src.tags(index).get("GRIB_UNIT") or src.tags(index).get("units")
    return convert(values, unit, layer.units, f"band {index}")


def _read_png_codes(src: rasterio.DatasetReader, stream: BinaryIO | None, index: int, layer: Layer) -> np.ndarray | None:
    """The layer's codes of a PNG-packed GRIB2 band, north up; None leaves the band to GDAL.

    Every packed integer gets its code from a table made by the same steps the
    GDAL path takes on each cell (GDAL's float32 arithmetic, nodata mask, unit
    conversion, :func:`_clean`, ``Encoding.encode``), so the codes are the same.
    """
    unit = src.tags(index).get("GRIB_UNIT")
    # GDAL itself turns Kelvin into [C] (GRIB_NORMALIZE_UNITS); we do not replay that.
    if src.driver != "GRIB" or stream is None or canonical_unit(unit or "") == "degC":
        return None
    fields = grib_png.locate_fields(stream)
    if fields is None or len(fields) != src.count:
        return None
    field = grib_png.png_field(stream, fields[index - 1])
    if field is None or (field.rows, field.cols) != src.shape or not _same_columns(field, src.transform):
        return None
    values = grib_png.packed_values(field)
    nodata = src.nodatavals[index - 1]
    if nodata is not None:
        values[values == nodata] = np.nan  # what read(masked=True) masks
    table = layer.encoding.encode(_clean(convert(values, unit, layer.units, f"band {index}"), layer))
    packed = grib_png.packed_grid(field)
    return grib_png.map_packed(packed, table, field.south_to_north)


def _same_columns(field: grib_png.PngField, transform: Affine) -> bool:
    """Whether GDAL kept the stored column order (it rolls global 0..360 grids to start at -180)."""
    first = transform.c + transform.a / 2
    shift = (first - field.first_longitude) % 360.0
    return min(shift, 360.0 - shift) < abs(transform.a) / 4


def _clean(values: np.ndarray, layer: Layer) -> np.ndarray:
    for missing in layer.missing_values:
        values[np.isclose(values, missing)] = np.nan
    if layer.no_echo_below is not None:
        with np.errstate(invalid="ignore"):
            values[values < layer.no_echo_below] = -np.inf
    return values


def _normalise_longitudes(values: np.ndarray, transform: Affine, crs: CRS) -> tuple[np.ndarray, Affine]:
    """Bring a geographic grid on 0..360 longitudes to -180..180 (GFS, many NetCDFs)."""
    if not crs.is_geographic:
        return values, transform
    west = transform.c
    east = west + transform.a * values.shape[1]
    if east <= 180.0 + 1e-6:
        return values, transform
    if west >= 180.0:
        return values, Affine(transform.a, 0, west - 360.0, 0, transform.e, transform.f)
    # A grid across 180: roll the part east of 180 to the front when it is global.
    if abs((east - west) - 360.0) < transform.a:
        split = int(round((180.0 - west) / transform.a))
        rolled = np.concatenate([values[:, split:], values[:, :split]], axis=1)
        return rolled, Affine(transform.a, 0, west + split * transform.a - 360.0, 0, transform.e, transform.f)
    raise IngestError("is a regional grid across the antimeridian, which wxtiles does not ingest yet")


def _frame_times(src: rasterio.DatasetReader, index: int, path: Path) -> tuple[datetime | None, datetime | None]:
    tags = src.tags(index)
    if "GRIB_VALID_TIME" in tags:
        return _epoch(tags["GRIB_VALID_TIME"]), _epoch(tags.get("GRIB_REF_TIME"))
    netcdf = _netcdf_time(src, index)
    if netcdf is not None:
        return netcdf, None
    tiff_time = src.tags().get("TIFFTAG_DATETIME")
    if tiff_time:
        # TIFF's "YYYY:MM:DD HH:MM:SS" has no zone; weather data is in UTC.
        try:
            return datetime.strptime(tiff_time.strip(), "%Y:%m:%d %H:%M:%S").replace(tzinfo=timezone.utc), None
        except ValueError:
            pass
    for key in ("valid_time", "time"):
        text = src.tags().get(key)
        if text:
            try:
                return parse_utc(text), None
            except TimeFormatError:
                pass
    stamp = _MRMS_STAMP.search(path.name)
    if stamp:
        try:
            return datetime.strptime("".join(stamp.groups()), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc), None
        except ValueError:
            pass  # digits that are not a date: no time from the name
    return None, None


def _epoch(text: str | None) -> datetime | None:
    if not text:
        return None
    match = re.match(r"\s*(-?\d+)", text)
    if not match:
        return None
    return datetime.fromtimestamp(int(match.group(1)), tz=timezone.utc)


def _netcdf_time(src: rasterio.DatasetReader, index: int) -> datetime | None:
    tags = src.tags()
    band_tags = src.tags(index)
    raw = band_tags.get("NETCDF_DIM_time")
    units = tags.get("time#units")
    if raw is None or units is None:
        return None
    match = _CF_TIME_UNITS.match(units)
    if not match:
        raise IngestError(f"has a time coordinate in units {units!r}, which wxtiles cannot read")
    unit, origin_text = match.groups()
    origin_text = origin_text.replace(" UTC", "").replace("Z", "").strip()
    try:
        origin = datetime.fromisoformat(origin_text.replace(" ", "T", 1))
    except ValueError:
        raise IngestError(f"has a time origin {origin_text!r} that wxtiles cannot read") from None
    if origin.tzinfo is None:
        origin = origin.replace(tzinfo=timezone.utc)
    step = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit[0].lower()]
    try:
        return (origin + timedelta(**{step: float(raw)})).astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise IngestError(f"has a time coordinate value {raw!r} that is not a usable time") from None


def _describe(src: rasterio.DatasetReader, index: int) -> str:
    tags = src.tags(index)
    if "GRIB_ELEMENT" in tags:
        return f"{tags['GRIB_ELEMENT']} {tags.get('GRIB_SHORT_NAME', '')}".strip()
    return src.descriptions[index - 1] or f"band {index}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
