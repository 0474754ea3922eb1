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

import numpy as np
import rasterio
import rasterio.shutil
import rasterio.warp
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds

from ingest.decode import SourceField, quiet_georeference
from tileserver.core import grid
from tileserver.core.layers import Encoding, Layer
from tileserver.store import Bounds

try:
    # Internal to rasterio (it backs rasterio.warp with in-memory arrays), hence the fallback.
    from rasterio._io import MemoryDataset
except ImportError:  # pragma: no cover - a rasterio without it
    MemoryDataset = None

# COG blocks: four 256-px XYZ tiles each, so a tile read touches one block.
BLOCK_SIZE = 512
# Metres per pixel at zoom 0 of 256-px tiles.
# Rows encoded at a time: Encoding.encode makes several float temporaries of
# its input, which for a whole 7000x3500 grid cost more than the grid itself.
ENCODE_BLOCK_ROWS = 256


@dataclass(frozen=True)
class BuiltCog:
    path: Path
    digest: str  # SHA-256 of the encoded source grid and its georeferencing
    bounds: Bounds  # footprint of the source data in lon/lat
    native_zoom: int


def cog_options(layer: Layer) -> dict[str, str]:
    return {
        "TILING_SCHEME": "GoogleMapsCompatible",
        "BLOCKSIZE": str(BLOCK_SIZE),
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


def encode_in_blocks(values: np.ndarray, encoding: Encoding, block_rows: int = ENCODE_BLOCK_ROWS) -> np.ndarray:
    """``encoding.encode(values)``, a block of rows at a time (it is cell by cell, so the codes are the same)."""
    codes = np.empty(values.shape, dtype=encoding.dtype)
    for start in range(0, values.shape[0], block_rows):
        codes[start:start + block_rows] = encoding.encode(values[start:start + block_rows])
    return codes


def _write_cog(codes: np.ndarray, field: SourceField, layer: Layer, out: Path, zoom: int | None) -> None:
    """Warp ``codes`` into a COG, GDAL reading them straight from our array.

    rasterio's MemoryDataset wraps the array as a GDAL MEM dataset without a
    copy. Writing it to a GTiff in /vsimem first, as before, cost the copy and
    another one in GDAL's block cache as the COG driver read it back: about
    70 MB more peak for a 7000x3500 uint8 grid, and the very same COG.
    """
    if MemoryDataset is None:
        profile = {
            "driver": "GTiff", "width": codes.shape[1], "height": codes.shape[0], "count": 1, "dtype": codes.dtype,
            "crs": field.crs, "transform": field.transform, "nodata": layer.encoding.nodata,
        }
        with MemoryFile() as memory:
            with memory.open(**profile) as grid:
                grid.write(codes, 1)
            with memory.open() as grid:
                options = cog_options(layer) if zoom is None else {**cog_options(layer), "ZOOM_LEVEL": str(_matrix_level(zoom))}
                rasterio.shutil.copy(grid, str(out), driver="COG", **options)
        return
    bands = np.ascontiguousarray(codes)[np.newaxis]
    with quiet_georeference():  # the constructor reads the transform before it sets it
        grid = MemoryDataset(bands, transform=field.transform, crs=field.crs, copy=False)
    options = cog_options(layer) if zoom is None else {**cog_options(layer), "ZOOM_LEVEL": str(_matrix_level(zoom))}
    with grid:
        grid.nodata = layer.encoding.nodata
        rasterio.shutil.copy(grid, str(out), driver="COG", **options)


def build_cog(field: SourceField, layer: Layer, out: Path) -> BuiltCog:
    """Write ``field`` as a Web Mercator COG at ``out``."""
    codes = field.values if field.encoded else encode_in_blocks(field.values, layer.encoding)
    rows, cols = codes.shape
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(codes).data)  # no tobytes() copy of the grid
    digest.update(repr((field.crs.to_wkt(), tuple(field.transform), codes.dtype.str, codes.shape)).encode())
    west, south, east, north = transform_bounds(
        field.crs, "EPSG:4326",
        field.transform.c, field.transform.f + field.transform.e * rows,
        field.transform.c + field.transform.a * cols, field.transform.f,
        densify_pts=21,
    )
    west, east = _longitude_span(west, east)
    # Across the antimeridian (west > east, as RFC 7946 writes it) the COG spans every
    # longitude, and GDAL would pick its zoom for that whole width: far too coarse.
    crosses = west > east
    _write_cog(codes, field, layer, out, zoom=_zoom_at_centre(field, rows, cols) if crosses else None)
    with rasterio.open(out) as cog:
        native_zoom = grid.zoom_for(cog.res[0])
    bounds = (
        max(west, -180.0), max(south, -grid.MAX_LAT),
        min(east, 180.0), min(north, grid.MAX_LAT),
    )
    return BuiltCog(out, digest.hexdigest(), tuple(round(v, 6) for v in bounds), native_zoom)  # type: ignore[arg-type]


def _matrix_level(zoom: int) -> int:
    """The COG driver's level for a 256-px tile zoom: its matrix has BLOCKSIZE-px tiles."""
    return max(0, zoom - int(math.log2(BLOCK_SIZE // 256)))


def _longitude_span(west: float, east: float) -> tuple[float, float]:
    """West and east on -180..180; west > east for a footprint across the antimeridian."""
    if east - west >= 360.0 - 1e-6:
        return -180.0, 180.0
    wrap = lambda lon: lon if -180.0 <= lon <= 180.0 else ((lon + 180.0) % 360.0) - 180.0  # noqa: E731
    return wrap(west), wrap(east)


def _zoom_at_centre(field: SourceField, rows: int, cols: int) -> int:
    """The tile zoom whose cells are closest to the source's cells at the grid's centre."""
    col, row = cols / 2, rows / 2
    corners = [field.transform * (col, row), field.transform * (col + 1, row), field.transform * (col, row + 1)]
    xs, ys = rasterio.warp.transform(field.crs, "EPSG:3857", [c[0] for c in corners], [c[1] for c in corners])
    world = 2 * grid.ORIGIN

    def step(k: int) -> float:
        dx = abs(xs[k] - xs[0]) % world
        return math.hypot(min(dx, world - dx), ys[k] - ys[0])  # the centre may sit on 180 deg

    size = math.sqrt(step(1) * step(2))
    return grid.zoom_for(size)
