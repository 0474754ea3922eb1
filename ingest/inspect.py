"""``wxtiles inspect``: what a source file holds and where each field would go, before ingesting.

Reads only metadata (no grid is decoded), through the same band and variable
choice as :mod:`ingest.decode`, so "would go to" here is what ingest will do.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.transform
from rasterio.warp import transform_bounds

from ingest import decode, odim
from ingest.errors import IngestError
from ingest.units import convert
from tileserver.core.layers import LAYERS, Layer
from tileserver.core.timeutil import format_utc


@dataclass
class FieldInfo:
    band: str  # "217", or "air:3" for a NetCDF variable's third band
    name: str  # GRIB element or NetCDF variable
    level: str
    units: str
    description: str
    valid: str | None
    reference: str | None


@dataclass
class FileInfo:
    path: str
    format: str = ""
    error: str | None = None
    crs: str | None = None
    width: int | None = None
    height: int | None = None
    bounds: list[float] | None = None  # west, south, east, north in degrees
    fields: list[FieldInfo] = field(default_factory=list)
    # layer id -> {"bands": [...], "steps": n} where ingest would take it, or {"reason": why not}
    layers: dict[str, dict[str, Any]] = field(default_factory=dict)


def inspect_file(path: Path) -> FileInfo:
    info = FileInfo(str(path))
    try:
        decode.check_file(path)
        if odim.is_odim(path):
            _describe_odim(path, info)
            return info
        with decode.reading(path), decode.open_source(path) as (src, _):
            _describe_file(src, path, info)
    except IngestError as exc:
        info.error = str(exc)
    return info


def _describe_odim(path: Path, info: FileInfo) -> None:
    info.format = "ODIM_H5"
    with odim.open_odim(path) as h5:
        fields = odim.data_fields(h5, odim.attributes(h5, "what"))
        info.format = f"ODIM_H5 {odim.text(odim.attributes(h5, 'what').get('object', ''))}".strip()
        for found in fields:
            data = h5[f"{found.path}/data"]
            try:
                valid = odim.odim_time(found.what, "date", "time") or odim.odim_time(found.what, "enddate", "endtime")
            except IngestError:
                valid = None
            info.fields.append(FieldInfo(
                band=found.path, name=found.quantity, level="", units=odim.QUANTITY_UNITS.get(found.quantity, ""),
                description=f"gain {found.what.get('gain', 1)}, offset {found.what.get('offset', 0)}",
                valid=format_utc(valid) if valid else None, reference=None,
            ))
            if info.width is None and data.ndim == 2:
                info.height, info.width = data.shape
                with contextlib.suppress(IngestError):
                    crs, transform = odim.grid(found.where, data.shape)
                    info.crs = crs.to_proj4() or crs.to_wkt()[:80]
                    edges = rasterio.transform.array_bounds(data.shape[0], data.shape[1], transform)
                    west, south, east, north = transform_bounds(crs, "EPSG:4326", *edges, densify_pts=21)
                    info.bounds = [round(v, 4) for v in (west, south, east, north)]
        for layer in LAYERS.values():
            try:
                chosen = odim.choose_field(fields, layer)
                info.layers[layer.id] = {"bands": [chosen.path], "steps": 1, "speed": False}
            except IngestError as exc:
                info.layers[layer.id] = {"reason": str(exc)}


def _describe_file(src: rasterio.DatasetReader, path: Path, info: FileInfo) -> None:
    info.format = src.driver
    datasets = [(None, src)] if not (src.subdatasets and src.count == 0) else None
    with contextlib.ExitStack() as stack:
        if datasets is None:
            datasets = [(decode.variable_name(name), stack.enter_context(rasterio.open(name))) for name in src.subdatasets]
        grid = next((d for _, d in datasets if d.crs is not None), datasets[0][1])
        info.width, info.height = grid.width, grid.height
        info.crs = _crs_text(grid)
        if grid.crs is not None and not grid.transform.is_identity:
            with contextlib.suppress(Exception):
                west, south, east, north = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)
                info.bounds = [round(v, 4) for v in (west, south, east, north)]
        for variable, dataset in datasets:
            for index in range(1, dataset.count + 1):
                info.fields.append(_field(dataset, variable, index, path))
        for layer in LAYERS.values():
            info.layers[layer.id] = _layer_choice(src, layer)


def _field(dataset: rasterio.DatasetReader, variable: str | None, index: int, path: Path) -> FieldInfo:
    tags = dataset.tags(index)
    try:
        valid, reference = decode.frame_times(dataset, index, path)
        valid_text = format_utc(valid) if valid else None
    except IngestError as exc:
        valid_text, reference = f"({exc})", None
    name = tags.get("GRIB_ELEMENT") or variable or tags.get("NETCDF_VARNAME") or dataset.descriptions[index - 1] or ""
    return FieldInfo(
        band=f"{variable}:{index}" if variable else str(index),
        name=name,
        level=tags.get("GRIB_SHORT_NAME", ""),
        units=decode.unit_label(dataset, index) or "",
        description=tags.get("GRIB_COMMENT") or tags.get("long_name") or tags.get("standard_name") or "",
        valid=valid_text,
        reference=format_utc(reference) if isinstance(reference, datetime) else None,
    )


def _layer_choice(src: rasterio.DatasetReader, layer: Layer) -> dict[str, Any]:
    """Where ``wxtiles ingest --layer`` would take this layer's field from, or why it would not."""
    try:
        steps = decode.plan_steps(src, layer, None)
        step = steps[0]
        with contextlib.ExitStack() as stack:
            datasets = [src if name is None else stack.enter_context(rasterio.open(name)) for name in step.sources]
            decode.georeference(datasets[0])
            for dataset, index in zip(datasets, step.bands):
                convert(np.zeros(1, np.float32), decode.unit_label(dataset, index), layer.units, f"band {index}")
    except IngestError as exc:
        return {"reason": str(exc)}
    bands = [f"{decode.variable_name(name)}:{index}" if name else str(index) for name, index in zip(step.sources, step.bands)]
    return {"bands": bands, "steps": len(steps), "speed": len(bands) == 2}


def _crs_text(dataset: rasterio.DatasetReader) -> str | None:
    if dataset.crs is None:
        return None
    code = dataset.crs.to_epsg(confidence_threshold=70)
    return f"EPSG:{code}" if code else dataset.crs.to_proj4() or dataset.crs.to_wkt()[:80]


def as_json(files: list[FileInfo]) -> dict[str, Any]:
    return {"files": [asdict(info) for info in files]}


def as_text(info: FileInfo) -> str:
    if info.error:
        return f"{info.path}: {info.error}"
    lines = [f"{info.path}: {info.format}, {info.width} x {info.height} cells, {info.crs or 'no CRS'}"]
    if info.bounds:
        west, south, east, north = info.bounds
        lines.append(f"  covers lon {west:g} to {east:g}, lat {south:g} to {north:g}")
    widths = (8, 14, 12, 16)
    header = ("band", "name", "level", "units")
    lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  valid                 run")
    for f in info.fields:
        cells = (f.band, f.name, f.level, f.units)
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + f"  {(f.valid or '-').ljust(20)}  {f.reference or '-'}")
    lines.append("  layers:")
    for layer_id, choice in info.layers.items():
        if "bands" in choice:
            what = f"speed of bands {' and '.join(choice['bands'])}" if choice["speed"] else f"band {choice['bands'][0]}"
            steps = f", {choice['steps']} time steps" if choice["steps"] > 1 else ""
            lines.append(f"    {layer_id}: {what}{steps}")
        else:
            lines.append(f"    {layer_id}: no ({choice['reason']})")
    return "\n".join(lines)
