"""Read ODIM_H5 2.x Cartesian radar products (objects COMP and IMAGE) with h5py.

ODIM_H5 is the European radar exchange format (OPERA, MeteoSwiss, FMI, KNMI...).
A product holds ``/what`` (object, date, time), ``/where`` (projdef, sizes,
scales, corner lon/lat) and ``/datasetN/dataM`` groups, each with a ``data``
array and a ``what`` group (quantity, gain, offset, nodata, undetect). The
``what`` attributes may sit at the root, the dataset or the data level; the
innermost wins. Row 0 is the north edge.

GDAL's HDF5 driver is not used: it reads the corners as outer edges whatever
the file means, ignores gain, offset, nodata and undetect, and georeferences
only some subdatasets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from affine import Affine
from pyproj import Transformer
from pyproj.exceptions import CRSError as ProjCRSError
from rasterio.crs import CRS
from rasterio.errors import CRSError

from ingest.decode import MAX_OBSERVATION_LEAD, BandChoice, SourceField, check_plausible, _first_line, has_hdf5_signature
from ingest.errors import IngestError
from ingest.units import convert
from tileserver.core.layers import Layer
from tileserver.core.timeutil import TimeFormatError, checked_utc, format_utc, utcnow

CARTESIAN_OBJECTS = ("COMP", "IMAGE")
# Objects that are not a map grid, and what each one is, for the refusal.
NOT_GRIDS = {
    "PVOL": "polar volume", "SCAN": "polar scan", "RAY": "single ray", "AZIM": "azimuthal object",
    "ELEV": "elevational object", "CVOL": "Cartesian volume (several heights)", "XSEC": "cross-section",
    "VP": "vertical profile", "PIC": "embedded picture",
}
# Units of the quantities a radar layer can take, per the ODIM_H5 quantity table.
QUANTITY_UNITS = {
    "DBZH": "dBZ", "DBZV": "dBZ", "TH": "dBZ", "TV": "dBZ", "DBZ": "dBZ",
    "RATE": "mm/h", "ACRR": "mm",
}
_NUMBERED = re.compile(r"^(dataset|data)(\d+)$")


@dataclass(frozen=True)
class DataField:
    path: str  # e.g. "dataset1/data1"
    quantity: str
    what: dict[str, Any]  # root, dataset and data ``what`` merged, the innermost winning
    where: dict[str, Any]  # root and dataset ``where`` merged


def is_odim(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file that declares the ODIM_H5 conventions.

    An HDF5 file h5py cannot open is refused here: GDAL would fail on it too,
    less clearly.
    """
    if not has_hdf5_signature(path):
        return False
    with open_odim(path) as h5:
        return text(h5.attrs.get("Conventions", "")).startswith("ODIM_H5")


def read_field(
    path: Path,
    layer: Layer,
    *,
    time: datetime | None = None,
    run: datetime | None = None,
    band: BandChoice | None = None,
) -> SourceField:
    """The layer's field of an ODIM_H5 Cartesian product, as :func:`ingest.decode.read_field` returns it."""
    if band is not None:
        raise IngestError("--band does not apply to ODIM_H5 files: the layer's ODIM quantity picks the field")
    with open_odim(path) as h5:
        try:
            return _read(h5, layer, time, run)
        except (OSError, KeyError) as exc:  # h5py reports a damaged file in these
            if "filter" in str(exc):
                raise IngestError(f"uses an HDF5 compression filter h5py here lacks ({_first_line(exc)})") from None
            raise IngestError(f"truncated or corrupt ODIM_H5 file ({_first_line(exc)})") from None


def _read(h5: h5py.File, layer: Layer, time: datetime | None, run: datetime | None) -> SourceField:
    root_what = attributes(h5, "what")
    kind = text(root_what.get("object", ""))
    if kind in NOT_GRIDS:
        raise IngestError(
            f"is an ODIM_H5 {NOT_GRIDS[kind]} (object {kind}), not a map grid; wxtiles ingests Cartesian "
            f"products ({' and '.join(CARTESIAN_OBJECTS)}): composite or grid it first (e.g. with BALTRAD or wradlib)"
        )
    if kind not in CARTESIAN_OBJECTS:
        raise IngestError(f"is ODIM_H5 object {kind or '(none given in /what/object)'}; wxtiles ingests {' and '.join(CARTESIAN_OBJECTS)} only")
    chosen = choose_field(data_fields(h5, root_what), layer)
    raw = h5[f"{chosen.path}/data"]
    if raw.ndim != 2:
        raise IngestError(f"{chosen.path}/data has {raw.ndim} dimensions; a Cartesian product has 2")
    crs, transform = grid(chosen.where, raw.shape)
    values = _physical(raw[()], chosen, layer)
    check_plausible(values, layer, f"ODIM quantity {chosen.quantity}")
    valid, reference = _times(chosen.what, time, run, layer)
    description = f"ODIM {kind} {chosen.quantity} ({chosen.path})"
    return SourceField(values, crs, transform, valid, reference, description)


def data_fields(h5: h5py.File, root_what: dict[str, Any]) -> list[DataField]:
    """Every ``datasetN/dataM`` with its merged metadata, in file order."""
    root_where = attributes(h5, "where")
    fields = []
    for dataset_name in _numbered(h5, "dataset"):
        dataset = h5[dataset_name]
        dataset_what = {**root_what, **attributes(dataset, "what")}
        where = {**root_where, **attributes(dataset, "where")}
        for data_name in _numbered(dataset, "data"):
            group = dataset[data_name]
            if "data" not in group:
                continue
            what = {**dataset_what, **attributes(group, "what")}
            quantity = text(what.get("quantity", ""))
            fields.append(DataField(f"{dataset_name}/{data_name}", quantity, what, where))
    return fields


def _numbered(group: h5py.Group, prefix: str) -> list[str]:
    names = [(int(m.group(2)), name) for name in group if (m := _NUMBERED.match(name)) and m.group(1) == prefix]
    return [name for _, name in sorted(names)]


def choose_field(fields: list[DataField], layer: Layer) -> DataField:
    """The first field of the layer's most preferred quantity."""
    wanted = layer.selector.odim
    for quantity in wanted:
        for candidate in fields:
            if candidate.quantity == quantity:
                return candidate
    present = ", ".join(dict.fromkeys(f.quantity or "(no quantity)" for f in fields)) or "no data arrays"
    if not wanted:
        raise IngestError(f"layer {layer.id} takes no ODIM_H5 quantity (file has {present})")
    raise IngestError(f"no ODIM_H5 quantity for layer {layer.id} (looked for {', '.join(wanted)}; file has {present})")


def grid(where: dict[str, Any], shape: tuple[int, int]) -> tuple[CRS, Affine]:
    """The CRS and north-up geotransform from ``where/projdef`` and the corners.

    The corners (LL, UL, UR, LR lon/lat, WGS84 as GDAL and pySTEPS read them)
    fix where the grid is. The ODIM_H5 specification and BALTRAD make them the
    outer edges of the corner pixels, but some producers (MeteoSwiss) write the
    corner pixels' centres, a one-pixel difference in span. ``xscale`` and
    ``yscale`` settle which: the reading whose span fits ``size * scale``
    (edges) or ``(size - 1) * scale`` (centres) to a quarter pixel wins. The
    scale is tried in metres and in km, as MeteoSwiss writes 1.0 for 1 km. The
    corners set position and pixel size, the scales only choose the reading;
    scales that fit neither reading contradict the corners, and the file is
    refused. Without scales the corners are edges, as the specification says.
    """
    rows, cols = shape
    projdef = text(where.get("projdef", ""))
    if not projdef:
        raise IngestError("has no where/projdef, so its grid cannot be placed")
    try:
        crs = CRS.from_string(projdef)
        to_grid = Transformer.from_crs("EPSG:4326", crs.to_wkt(), always_xy=True)
    except (CRSError, ProjCRSError):
        raise IngestError(f"has a where/projdef PROJ cannot read: {projdef!r}") from None
    for axis, size in (("xsize", cols), ("ysize", rows)):
        if axis in where and int(_number(where[axis])) != size:
            raise IngestError(f"where/{axis} is {int(_number(where[axis]))} but the data array has {size}")
    corners = {}
    for corner in ("LL", "UL", "UR", "LR"):
        lon, lat = where.get(f"{corner}_lon"), where.get(f"{corner}_lat")
        if lon is not None and lat is not None:
            corners[corner] = to_grid.transform(_number(lon), _number(lat))
    if "LL" not in corners or "UR" not in corners:
        raise IngestError("lacks the where/LL_lon, LL_lat, UR_lon, UR_lat corners, so its grid cannot be placed")
    if not all(np.isfinite(corners[c]).all() for c in corners):
        raise IngestError("has corners outside the domain of its where/projdef")
    ll, ur = corners["LL"], corners["UR"]
    ul, lr = corners.get("UL", (ll[0], ur[1])), corners.get("LR", (ur[0], ll[1]))
    west, east = (ll[0] + ul[0]) / 2, (ur[0] + lr[0]) / 2
    south, north = (ll[1] + lr[1]) / 2, (ul[1] + ur[1]) / 2
    if east <= west or north <= south:
        raise IngestError("has corners that do not enclose a grid (east of west, north of south) in its where/projdef")
    tolerance = min((east - west) / cols, (north - south) / rows) / 4
    if max(abs(ll[0] - ul[0]), abs(ur[0] - lr[0]), abs(ll[1] - lr[1]), abs(ul[1] - ur[1])) > tolerance:
        raise IngestError("has corners that are not a north-up rectangle in its where/projdef; wxtiles does not ingest rotated grids")
    readings = {
        axis: _reading(span, size, _number(where[scale]) if scale in where else None, scale)
        for axis, span, size, scale in (("x", east - west, cols, "xscale"), ("y", north - south, rows, "yscale"))
    }
    found = {r for r in readings.values() if r is not None}
    if len(found) > 1:
        raise IngestError("has xscale and yscale that read the corners differently (one as edges, one as pixel centres)")
    if found == {"centres"}:
        dx, dy = (east - west) / (cols - 1), (north - south) / (rows - 1)
        return crs, Affine(dx, 0.0, west - dx / 2, 0.0, -dy, north + dy / 2)
    return crs, Affine((east - west) / cols, 0.0, west, 0.0, -(north - south) / rows, north)


def _reading(span: float, size: int, scale: float | None, name: str) -> str | None:
    """Whether ``scale`` says the corners are pixel "edges" or "centres"; None without a scale."""
    if scale is None or not np.isfinite(scale) or scale <= 0:
        return None
    for unit in (1.0, 1000.0):
        pixel = scale * unit
        for reading, pixels in (("edges", size), ("centres", size - 1)):
            if pixels > 0 and abs(pixels * pixel - span) <= pixel / 4:
                return reading
    raise IngestError(
        f"where/{name} {scale:g} fits neither reading of the corners, which span {span:.6g} over {size} pixels "
        f"({span / size:.6g} per pixel as edges, {span / max(size - 1, 1):.6g} as centres): inconsistent georeferencing"
    )


def _physical(raw: np.ndarray, field: DataField, layer: Layer) -> np.ndarray:
    """``raw * gain + offset`` in the layer's units; NaN for nodata and NaN, "no echo" for undetect."""
    what = field.what
    gain = _number(what.get("gain", 1.0))
    offset = _number(what.get("offset", 0.0))
    values = (raw.astype(np.float64) * gain + offset).astype(np.float32)
    unit = QUANTITY_UNITS.get(field.quantity)  # an unlisted quantity a layer names is taken in the layer's units
    values = convert(values, unit, layer.units, f"{field.path} ({field.quantity})")
    if layer.no_echo_below is not None:
        with np.errstate(invalid="ignore"):
            values[values < layer.no_echo_below] = -np.inf
    # The codes are tested on the raw values, before scaling, as the specification says.
    if "undetect" in what:
        values[raw == _number(what["undetect"])] = _no_echo(layer)
    no_coverage = ~np.isfinite(raw) if np.issubdtype(raw.dtype, np.floating) else np.zeros(raw.shape, dtype=bool)
    if "nodata" in what:
        no_coverage |= raw == _number(what["nodata"])
    values[no_coverage] = np.nan
    return values


def _no_echo(layer: Layer) -> float:
    """"Nothing detected": -inf where the layer stores no echo apart (dBZ), else its lowest value (0 mm/h)."""
    if layer.encoding.no_echo is not None:
        return -np.inf
    return layer.encoding.value_range[0]


def _times(what: dict[str, Any], time: datetime | None, run: datetime | None, layer: Layer) -> tuple[datetime, datetime | None]:
    """Valid time (and run, for forecast layers) from ``what/date`` and ``what/time``.

    ``date``/``time`` is the product's nominal time, the one its producer files
    it under. A composite's dataset also gives ``startdate/starttime`` and
    ``enddate/endtime``, the span of the scans merged into it; the nominal time
    is its end (MeteoSwiss: 09:45 to 09:50, nominal 09:50), the moment the data
    is complete, as an accumulation is valid at its end. So ``enddate/endtime``
    stands in only when a file lacks ``date``/``time``.
    """
    if time is None:
        time = odim_time(what, "date", "time") or odim_time(what, "enddate", "endtime")
    if time is None:
        raise IngestError("carries no time (what/date and what/time); pass --time")
    try:
        valid = checked_utc(time)
        reference = checked_utc(run or valid) if layer.kind == "forecast" else None
    except TimeFormatError as exc:
        raise IngestError(f"has an impossible time: {exc}") from None
    if layer.kind == "observed" and valid > utcnow() + MAX_OBSERVATION_LEAD:
        raise IngestError(f"observation time {format_utc(valid)} is in the future; check --time or the file")
    return valid, reference


def odim_time(what: dict[str, Any], date_key: str, time_key: str) -> datetime | None:
    if date_key not in what or time_key not in what:
        return None
    date, clock = text(what[date_key]), text(what[time_key])
    try:
        return datetime.strptime(date + clock.ljust(6, "0"), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise IngestError(f"has a what/{date_key} {date!r} and {time_key} {clock!r} that are not YYYYMMDD and HHMMSS") from None


def open_odim(path: Path) -> h5py.File:
    try:
        # No HDF5 file lock: a read-only share (or a file another reader holds) must still open.
        return h5py.File(path, "r", locking=False)
    except (OSError, ValueError) as exc:
        raise IngestError(f"truncated or corrupt HDF5 file ({_first_line(exc)})") from None


def attributes(group: h5py.Group, name: str) -> dict[str, Any]:
    child = group.get(name)
    return dict(child.attrs) if isinstance(child, h5py.Group) else {}


def text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else b"".join(np.atleast_1d(value).tolist())
    if isinstance(value, bytes | np.bytes_):
        value = value.decode("ascii", errors="replace")
    return str(value).strip("\x00").strip()


def _number(value: Any) -> float:
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    try:
        return float(text(value) if isinstance(value, bytes | np.bytes_ | str) else value)
    except (TypeError, ValueError):
        raise IngestError(f"has a non-numeric ODIM_H5 attribute value {value!r}") from None

