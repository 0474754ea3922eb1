"""Open a source file and pick the field a layer needs, in the layer's units.

Handles GeoTIFF, CF/COARDS NetCDF and GRIB1/GRIB2 (plain or gzipped, as MRMS
publishes it) through GDAL. The result is a float32 grid in its own CRS: NaN
where there is no coverage, -inf where a radar saw no echo, with the source's
packing (GDAL band scale and offset, CF ``scale_factor``/``add_offset``) applied
and units converted. PNG-packed GRIB2 fields (MRMS) skip the float grid: their
packed integers go straight to the layer's codes (:mod:`ingest.grib_png`), with
GDAL still giving the CRS, transform and times.

A file with several time steps (a NetCDF time axis) gives one field per step.
A field whose bulk is implausible for the layer (a unit mistake) is refused.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import logging
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
import pyproj
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from ingest import grib_png
from ingest.cf_time import cf_time
from ingest.errors import IngestError
from ingest.gribgrid import grid_problem
from ingest.units import convert
from tileserver.core import grid
from tileserver.core.layers import Layer
from tileserver.core.timeutil import TimeFormatError, checked_utc, format_utc, parse_utc, utcnow

# GDAL options that make decoding predictable:
# - GRIB values in the units the message holds: GDAL's normalisation (K -> degC)
#   follows tables that mislabel some GRIB1 fields (ECMWF 2T stays Kelvin but is
#   labelled [C]), so we convert from the real units ourselves;
# - global 0..360 grids rewrapped to -180..180, and a stray wgrib2 .idx beside the
#   file ignored (the messages themselves are the truth);
# - NetCDF lat/lon grids without a grid_mapping (COARDS, much of NOAA's and
#   reanalysis output) read as longitude/latitude, as every GIS reads them;
#   :func:`_check_assumed_longlat` makes sure the axes really are degrees.
GDAL_READ_OPTIONS = {
    "GRIB_NORMALIZE_UNITS": "NO", "GRIB_ADJUST_LONGITUDE_RANGE": "YES", "USE_IDX": "NO",
    "GDAL_NETCDF_ASSUME_LONGLAT": "YES",
}
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Cells sampled for the plausibility check of a field.
PLAUSIBILITY_SAMPLE = 1_000_000

MAX_OBSERVATION_LEAD = timedelta(hours=1)
_MRMS_STAMP = re.compile(r"(\d{8})[-_](\d{6})")
_CF_TIME_UNITS = re.compile(r"^\s*\w+\s+since\s+", re.IGNORECASE)


# GDAL notes, through rasterio's logger, what wxtiles handles by design: clamping
# a global grid to the tile matrix's +-85.05 deg, PROJ refusing a pole cell it
# needs no value for, and a NetCDF grid_mapping GDAL cannot read (pyproj reads
# it, see georeference). A user can do nothing about any of them.
_EXPECTED_GDAL_NOTES = ("Clamping it to it", "Invalid latitude", "Unhandled X/Y axis unit")


class _ExpectedGdalNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(note in message for note in _EXPECTED_GDAL_NOTES)


logging.getLogger("rasterio._env").addFilter(_ExpectedGdalNotes())


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


def read_fields(
    path: Path,
    layer: Layer,
    *,
    time: datetime | None = None,
    run: datetime | None = None,
    band: BandChoice | None = None,
) -> Iterator[SourceField]:
    """Every field of ``path`` for ``layer``: one per time step, in file order.

    The file is opened again for each later step, so only one step's grid is
    in memory at a time and nothing stays open while the caller works.
    """
    if layer.blend:
        raise IngestError(f"layer {layer.id} is a view blended from {' and '.join(layer.blend)}; ingest into one of those")
    check_file(path)
    if has_hdf5_signature(path):
        # Here, not at the top: odim builds on this module's SourceField, and h5py
        # costs every other ingest 11 MB.
        from ingest import odim

        if odim.is_odim(path):  # GDAL's HDF5 driver misplaces ODIM grids and ignores their gain and codes
            yield odim.read_field(path, layer, time=time, run=run, band=band)
            return
    with reading(path), open_source(path) as (src, stream):
        steps = plan_steps(src, layer, band)
        if time is not None and len(steps) > 1:
            raise IngestError(f"holds {len(steps)} time steps, each with its own time; leave out --time (or pick one with --band)")
        # Handed out of a list, so this suspended generator keeps no reference to the grid.
        ready = [_read_step(src, stream, path, layer, steps[0], time, run)]
    # Time steps of one file without a reference time are one run, from its first step.
    run = run or ready[0].run
    yield ready.pop()
    for step in steps[1:]:
        with reading(path), open_source(path) as (src, stream):
            ready.append(_read_step(src, stream, path, layer, step, time, run))
        yield ready.pop()


def read_field(
    path: Path,
    layer: Layer,
    *,
    time: datetime | None = None,
    run: datetime | None = None,
    band: BandChoice | None = None,
) -> SourceField:
    """The field of ``path`` for ``layer``; the first time step of a file that has several."""
    fields = read_fields(path, layer, time=time, run=run, band=band)
    try:
        return next(fields)
    finally:
        fields.close()


def has_hdf5_signature(path: Path) -> bool:
    """The HDF5 signature sits at byte 0, or after a user block of 512, 1024, 2048... bytes."""
    try:
        size = path.stat().st_size
        with path.open("rb") as stream:
            offset = 0
            while offset + len(HDF5_SIGNATURE) <= size:
                stream.seek(offset)
                if stream.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError as exc:
        raise IngestError(f"unreadable: {_first_line(exc)}") from None
    return False


def check_file(path: Path) -> None:
    if path.is_dir():
        raise IngestError("is a directory, not a file")
    if not path.is_file():
        raise IngestError("no such file")
    if path.stat().st_size == 0:
        raise IngestError("is empty")


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """GDAL's read options, and its failures as one-line :class:`IngestError`."""
    try:
        # We report a missing georeference ourselves, in one line.
        with quiet_georeference(), rasterio.Env(**GDAL_READ_OPTIONS):
            yield
    except RasterioError as exc:
        problem = grid_problem(path)
        if problem:
            raise IngestError(problem) from None
        if "not recognized as being in a supported file format" in str(exc):
            raise IngestError("unsupported format: not a GeoTIFF, NetCDF, GRIB or ODIM_H5 file wxtiles can read") from None
        raise IngestError(f"unreadable: {_first_line(exc)}") from None
    except (MemoryError, OSError, EOFError) as exc:
        raise IngestError(f"unreadable: {_first_line(exc)}") from None


@dataclass(frozen=True)
class _Step:
    """Where one time step of a field is: per component (one, or U and V), a
    subdataset (None = the file itself) and a band of it."""

    sources: tuple[str | None, ...]
    bands: tuple[int, ...]


def plan_steps(src: rasterio.DatasetReader, layer: Layer, band: BandChoice | None) -> list[_Step]:
    if band is not None and len(band) == 2 and not layer.selector.is_vector:
        raise IngestError(f"two bands (U,V) only make sense for a vector layer; {layer.id} takes one")
    if src.subdatasets and src.count == 0:
        names = _pick_subdatasets(src.subdatasets, layer)
        if band is not None:
            if len(band) != len(names):
                raise IngestError(f"--band takes {len(names)} number(s) here, one per variable ({', '.join(variable_name(n) for n in names)})")
            return [_Step(tuple(names), band)]
        counts = []
        for name in names:
            with rasterio.open(name) as sub:
                counts.append(_time_steps(sub, variable_name(name)))
        if len(set(counts)) != 1:
            raise IngestError(f"variables {', '.join(variable_name(n) for n in names)} have different numbers of time steps")
        return [_Step(tuple(names), (index,) * len(names)) for index in range(1, counts[0] + 1)]
    if band is not None:
        return [_Step((None,) * len(band), band)]
    if src.driver == "GRIB":
        return [_Step((None,) * len(bands), bands) for bands in [_select_grib_bands(src, layer)]]
    return [_Step((None,), (index,)) for index in range(1, _time_steps(src, None) + 1)]


def variable_name(subdataset: str) -> str:
    return subdataset.rsplit(":", 1)[-1]


def _time_steps(src: rasterio.DatasetReader, variable: str | None) -> int:
    """How many bands are time steps of one field; more than one band otherwise needs --band."""
    if src.count == 1:
        return 1
    extra = src.tags().get("NETCDF_DIM_EXTRA", "").strip("{}").split(",")
    extra = [name for name in extra if name]
    if len(extra) == 1 and _is_time_axis(src, extra[0]):
        return src.count
    what = f"variable {variable}" if variable else "the file"
    axes = f" (axes {', '.join(extra)})" if extra else ""
    raise IngestError(f"{what} has {src.count} bands{axes}; say which with --band")


def _is_time_axis(src: rasterio.DatasetReader, dimension: str) -> bool:
    units = src.tags().get(f"{dimension}#units", "")
    return bool(_CF_TIME_UNITS.match(units))


def _pick_subdatasets(names: list[str], layer: Layer) -> list[str]:
    """The NetCDF variable of the field itself, else a pair of components to take the speed of."""
    by_variable = {variable_name(name): name for name in names}
    standard: dict[str, str] = {}
    for name in names:
        with rasterio.open(name) as sub:
            found = sub.tags().get(f"{variable_name(name)}#standard_name") or sub.tags(1).get("standard_name") if sub.count else None
        if found:
            standard.setdefault(found, name)

    def lookup(wanted: str) -> str | None:
        return by_variable.get(wanted) or standard.get(wanted)

    selector = layer.selector
    for wanted in selector.netcdf:
        if lookup(wanted):
            return [lookup(wanted)]  # type: ignore[list-item]
    for u, v in selector.netcdf_components:
        if lookup(u) and lookup(v):
            return [lookup(u), lookup(v)]  # type: ignore[list-item]
    looked = [*selector.netcdf, *(f"{u}+{v}" for u, v in selector.netcdf_components)]
    raise IngestError(f"no variable for layer {layer.id} (looked for {', '.join(looked) or 'nothing'}; file has {', '.join(by_variable)})")


def _read_step(
    src: rasterio.DatasetReader, stream: BinaryIO | None, path: Path, layer: Layer, step: _Step,
    time: datetime | None, run: datetime | None,
) -> SourceField:
    with contextlib.ExitStack() as stack:
        datasets = [src if name is None else stack.enter_context(rasterio.open(name)) for name in step.sources]
        first = datasets[0]
        crs = georeference(first)
        for dataset, index in zip(datasets, step.bands):
            if index > dataset.count:
                raise IngestError(f"has {dataset.count} bands; band {index} does not exist")
        codes = None
        if len(step.bands) == 1 and step.sources == (None,):
            codes = _read_png_codes(src, stream, step.bands[0], layer)
        if codes is not None:
            values = codes
        else:
            grids = [_read_band(dataset, index, layer) for dataset, index in zip(datasets, step.bands)]
            values = np.hypot(grids[0], grids[1]).astype(np.float32) if len(grids) == 2 else grids[0]
            del grids
        values, transform = _normalise_longitudes(values, first.transform, crs)
        values, transform = _crop_to_mercator(values, transform, crs)
        if codes is None:
            values = _clean(values, layer)
            check_plausible(values, layer, unit_label(first, step.bands[0]))
        else:
            check_plausible(layer.encoding.decode(_sample(values)), layer, unit_label(first, step.bands[0]))
        valid, reference = frame_times(first, step.bands[0], path)
        description = ", ".join(_describe(dataset, index) for dataset, index in zip(datasets, step.bands))
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
    return SourceField(values, crs, transform, valid, run, description, encoded=codes is not None)


def georeference(src: rasterio.DatasetReader) -> CRS:
    """The CRS of a north-up grid: GDAL's, or the NetCDF variable's CF grid_mapping read by pyproj
    (GDAL reads some of them, such as rotated_latitude_longitude, as none)."""
    if src.transform.is_identity:
        raise IngestError("has no geotransform (not georeferenced)")
    if src.transform.b != 0 or src.transform.d != 0:
        raise IngestError("has a rotated grid, which wxtiles does not ingest")
    assumed = src.crs is not None and src.driver == "netCDF" and src.crs.to_string() == "OGC:CRS84"
    if src.crs is not None and not assumed:
        return src.crs
    from_cf = _cf_grid_mapping(src)
    if from_cf is not None:
        return from_cf
    if src.crs is None:
        raise IngestError("has no coordinate reference system (not georeferenced)")
    if not _has_degree_axes(src):
        # GDAL_NETCDF_ASSUME_LONGLAT takes any grid without a grid_mapping for
        # lon/lat; only axes in degrees really are.
        raise IngestError("has no grid_mapping and its axes are not latitude/longitude in degrees (not georeferenced)")
    return src.crs


def _cf_grid_mapping(src: rasterio.DatasetReader) -> CRS | None:
    tags = src.tags()
    variable = src.tags(1).get("NETCDF_VARNAME") if src.count else None
    mapping = tags.get(f"{variable}#grid_mapping") if variable else None
    if not mapping:
        return None
    attributes: dict[str, object] = {}
    for key, value in tags.items():
        if key.startswith(f"{mapping}#"):
            name = key.split("#", 1)[1]
            try:
                attributes[name] = float(value)
            except ValueError:
                attributes[name] = value
    if "grid_mapping_name" not in attributes:
        return None
    try:
        return CRS.from_wkt(pyproj.CRS.from_cf(attributes).to_wkt())
    except (pyproj.exceptions.CRSError, ValueError) as exc:
        raise IngestError(f"has a CF grid_mapping {attributes['grid_mapping_name']!r} that cannot be read ({_first_line(exc)})") from None


def _is_lonlat(crs: CRS) -> bool:
    """Plain longitude/latitude: not a rotated pole, whose "longitudes" are the grid's own."""
    return crs.is_geographic and not _is_derived(crs.to_wkt())


@functools.lru_cache(maxsize=64)
def _is_derived(wkt: str) -> bool:
    # Asked several times per field (rewrap, crop, the PNG fast path): parse each CRS once.
    return pyproj.CRS.from_wkt(wkt).is_derived


def _has_degree_axes(src: rasterio.DatasetReader) -> bool:
    units = {value.strip().lower() for key, value in src.tags().items() if key.endswith("#units")}
    return bool(units & {"degrees_north", "degree_north", "degrees_n", "degreen"}) and bool(
        units & {"degrees_east", "degree_east", "degrees_e", "degreee"}
    )


def _select_grib_bands(src: rasterio.DatasetReader, layer: Layer) -> BandChoice:
    selector = layer.selector
    messages = [(src.tags(i).get("GRIB_ELEMENT", ""), src.tags(i).get("GRIB_SHORT_NAME", "")) for i in range(1, src.count + 1)]

    def first(match) -> int | None:  # noqa: ANN001 - a GribMatch
        return next((i for i, (element, level) in enumerate(messages, 1) if match.matches(element, level)), None)

    for u, v in selector.grib_components:
        pair = (first(u), first(v))
        if pair[0] and pair[1]:
            return pair  # type: ignore[return-value]
    for match in selector.grib:  # in order of preference
        found = first(match)
        if found:
            return (found,)
    wanted = [f"{u} and {v}" for u, v in selector.grib_components] + [str(m) for m in selector.grib]
    if not wanted:
        raise IngestError(f"layer {layer.id} names no GRIB fields; this file holds {src.count} GRIB messages")
    raise IngestError(f"no GRIB message for layer {layer.id} ({' or '.join(wanted)}) among its {src.count} messages; pick one with --band")


def _read_band(src: rasterio.DatasetReader, index: int, layer: Layer) -> np.ndarray:
    """A band in the layer's units: nodata masked on the stored values, then GDAL's
    scale and offset (CF ``scale_factor``/``add_offset``, GeoTIFF band scale) applied."""
    masked = src.read(index, masked=True, out_dtype="float64" if _needs_double(src, index) else "float32")
    values = masked.filled(np.nan)
    scale, offset = src.scales[index - 1], src.offsets[index - 1]
    if scale not in (None, 1.0):
        values *= scale
    if offset not in (None, 0.0):
        values += offset
    values = values.astype(np.float32, copy=False)
    return convert(values, unit_label(src, index), layer.units, f"band {index}")


def _needs_double(src: rasterio.DatasetReader, index: int) -> bool:
    """Packed 32-bit integers and doubles lose digits in float32 before their scale is applied."""
    return src.dtypes[index - 1] in ("int32", "uint32", "float64", "int64", "uint64")


def unit_label(src: rasterio.DatasetReader, index: int) -> str | None:
    tags = src.tags(index)
    return tags.get("GRIB_UNIT") or tags.get("units") or (src.units[index - 1] if src.units else None) or None


def _read_png_codes(src: rasterio.DatasetReader, stream: BinaryIO | None, index: int, layer: Layer) -> np.ndarray | None:
    """The layer's codes of a PNG-packed GRIB2 band, north up; None leaves the band to GDAL.

    Every packed integer gets its code from a table made by the same steps the
    GDAL path takes on each cell (GDAL's float32 arithmetic, nodata mask, unit
    conversion, :func:`_clean`, ``Encoding.encode``), so the codes are the same.
    """
    unit = src.tags(index).get("GRIB_UNIT")
    if src.driver != "GRIB" or stream is None:
        return None
    fields = grib_png.locate_fields(stream)
    if fields is None or len(fields) != src.count:
        return None
    field = grib_png.png_field(stream, fields[index - 1])
    if field is None or (field.rows, field.cols) != src.shape or not _same_columns(field, src.transform):
        return None
    if _mercator_crop_rows(src.transform, src.shape[0], src.crs) != (0, src.shape[0]):
        return None  # a grid reaching the poles; the GDAL path crops it
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


def _sample(values: np.ndarray) -> np.ndarray:
    stride = max(1, int(np.sqrt(values.size / PLAUSIBILITY_SAMPLE)))
    return values[::stride, ::stride]


def check_plausible(values: np.ndarray, layer: Layer, unit_label: str | None) -> None:
    """Refuse a field whose bulk lies outside the layer's plausible range.

    A unit mistake (Kelvin read as Celsius, Pa as hPa) moves the whole field;
    a few wild cells (radar clutter) do not, and are kept (encoding clips them).
    """
    sample = _sample(values)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        return
    low, high = layer.plausible_range
    inside = np.count_nonzero((finite >= low) & (finite <= high)) / finite.size
    if inside >= 0.5:
        return
    label = f" (labelled {unit_label!r})" if unit_label else " (no unit label)"
    raise IngestError(
        f"values are implausible for {layer.id} in {layer.units}: {100 * (1 - inside):.0f}% of them lie outside "
        f"{low:g} to {high:g}, median {float(np.median(finite)):.6g}; the field's units{label} or the field itself look wrong"
    )


def _normalise_longitudes(values: np.ndarray, transform: Affine, crs: CRS) -> tuple[np.ndarray, Affine]:
    """Bring a geographic grid on 0..360 longitudes to -180..180 (GFS, many NetCDFs).

    A regional grid across 180 keeps its longitudes past 180; the COG step
    serves both sides of the antimeridian.
    """
    if not _is_lonlat(crs):
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
    return values, transform


def _mercator_crop_rows(transform: Affine, rows: int, crs: CRS) -> tuple[int, int]:
    """Rows of a north-up lon/lat grid that reach inside Web Mercator's +-85.05 deg.

    Rows wholly beyond it can never be drawn, and warping them makes PROJ print
    an "Invalid latitude" error for each pole row.
    """
    if transform.e >= 0 or not _is_lonlat(crs):
        return 0, rows
    north = transform.f
    first = max(0, int(np.floor((north - grid.MAX_LAT) / -transform.e)))
    last = min(rows, int(np.ceil((north + grid.MAX_LAT) / -transform.e)))
    return first, max(first, last)


def _crop_to_mercator(values: np.ndarray, transform: Affine, crs: CRS) -> tuple[np.ndarray, Affine]:
    first, last = _mercator_crop_rows(transform, values.shape[0], crs)
    if (first, last) == (0, values.shape[0]):
        return values, transform
    if first == last:
        raise IngestError("lies wholly beyond 85 deg of latitude, outside Web Mercator")
    return values[first:last], transform * Affine.translation(0, first)


def frame_times(src: rasterio.DatasetReader, index: int, path: Path) -> tuple[datetime | None, datetime | None]:
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
    """The band's time from its CF time coordinate (any axis whose units are "<unit> since <origin>")."""
    tags = src.tags()
    for key, raw in src.tags(index).items():
        if not key.startswith("NETCDF_DIM_"):
            continue
        dimension = key[len("NETCDF_DIM_"):]
        units = tags.get(f"{dimension}#units")
        if units is None or not _CF_TIME_UNITS.match(units):
            continue
        return cf_time(raw, units, tags.get(f"{dimension}#calendar"))
    return None


def _describe(src: rasterio.DatasetReader, index: int) -> str:
    tags = src.tags(index)
    if "GRIB_ELEMENT" in tags:
        return f"{tags['GRIB_ELEMENT']} {tags.get('GRIB_SHORT_NAME', '')}".strip()
    variable = tags.get("NETCDF_VARNAME")
    if variable:
        return variable if src.count == 1 else f"{variable} step {index}"
    return src.descriptions[index - 1] or f"band {index}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
