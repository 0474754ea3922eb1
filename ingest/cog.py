"""Quantise a source field, reproject it to Web Mercator and write a COG.

One GDAL step does the reprojection and the COG layout: the COG driver with
``TILING_SCHEME=GoogleMapsCompatible`` warps onto the global Web Mercator tile
grid (clipped at +-85.0511 deg), so every 512-px block and every overview level
lines up with XYZ tiles and a tile read touches whole blocks only.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import rasterio
import rasterio.shutil
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds

from ingest.decode import SourceField
from tileserver.layers import Layer
from tileserver.store import Bounds

WEB_MERCATOR_MAX_LAT = 85.0511287798066
# Metres per pixel at zoom 0 of 256-px tiles.
ZOOM0_RESOLUTION = 2 * math.pi * 6378137 / 256


@dataclass(frozen=True)
class BuiltCog:
    path: Path
    digest: str  # SHA-256 of the encoded source grid and its georeferencing
    bounds: Bounds  # footprint of the source data in lon/lat
    native_zoom: int


def cog_options(layer: Layer) -> dict[str, str]:
    return {
        "TILING_SCHEME": "GoogleMapsCompatible",
        "BLOCKSIZE": "512",
        "COMPRESS": "ZSTD",
        "LEVEL": "9",
        "PREDICTOR": "YES",
        "WARP_RESAMPLING": layer.resampling,
        "OVERVIEW_RESAMPLING": layer.overview_resampling,
        "ZOOM_LEVEL_STRATEGY": "AUTO",
        "ADD_ALPHA": "NO",
        "SPARSE_OK": "TRUE",
        "NUM_THREADS": "ALL_CPUS",
        "STATISTICS": "NO",
    }


def build_cog(field: SourceField, layer: Layer, out: Path) -> BuiltCog:
    """Write ``field`` as a Web Mercator COG at ``out``."""
    codes = layer.encoding.encode(field.values)
    rows, cols = codes.shape
    digest = hashlib.sha256()
    digest.update(codes.tobytes())
    digest.update(repr((field.crs.to_wkt(), tuple(field.transform), codes.dtype.str, codes.shape)).encode())
    profile = {
        "driver": "GTiff", "width": cols, "height": rows, "count": 1, "dtype": codes.dtype,
        "crs": field.crs, "transform": field.transform, "nodata": layer.encoding.nodata,
    }
    with MemoryFile() as memory:
        with memory.open(**profile) as grid:
            grid.write(codes, 1)
        with memory.open() as grid:
            rasterio.shutil.copy(grid, str(out), driver="COG", **cog_options(layer))
    with rasterio.open(out) as cog:
        native_zoom = round(math.log2(ZOOM0_RESOLUTION / cog.res[0]))
    west, south, east, north = transform_bounds(
        field.crs, "EPSG:4326",
        field.transform.c, field.transform.f + field.transform.e * rows,
        field.transform.c + field.transform.a * cols, field.transform.f,
        densify_pts=21,
    )
    bounds = (
        max(west, -180.0), max(south, -WEB_MERCATOR_MAX_LAT),
        min(east, 180.0), min(north, WEB_MERCATOR_MAX_LAT),
    )
    return BuiltCog(out, digest.hexdigest(), tuple(round(v, 6) for v in bounds), native_zoom)  # type: ignore[arg-type]


