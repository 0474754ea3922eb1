"""The Web Mercator tile grid (OGC WebMercatorQuad), defined once.

The grid's numbers come from morecantile's ``WebMercatorQuad`` tile matrix set:
its origin, zoom-0 cell size and scale denominators (what WMTS documents list).
Per-request coordinate arithmetic (lon/lat to metres, tile bounds) uses
mercantile, which computes the same numbers on plain floats 3 to 200 times
faster than morecantile's validated models (benchmarks/grid.py).
"""

from __future__ import annotations

import math

import mercantile
import morecantile

TMS = morecantile.tms.get("WebMercatorQuad")
_LEFT, _BOTTOM, _RIGHT, _TOP = TMS.xy_bbox
# Half the width of the world, in metres: the lattice runs from -ORIGIN to ORIGIN.
ORIGIN: float = _RIGHT
TILE_SIZE: int = TMS.matrix(0).tileWidth
# Metres per pixel of zoom 0; each zoom halves it.
ZOOM0_RESOLUTION: float = TMS.matrix(0).cellSize
MAX_LAT: float = TMS.bbox.top

Tile = mercantile.Tile
xy = mercantile.xy
lnglat = mercantile.lnglat
xy_bounds = mercantile.xy_bounds


def resolution(zoom: int) -> float:
    """Metres per pixel at ``zoom``."""
    return ZOOM0_RESOLUTION / 2**zoom


def zoom_for(resolution_m: float) -> int:
    """The zoom whose pixel is nearest ``resolution_m`` metres (in log scale), at least 0."""
    return max(0, round(math.log2(ZOOM0_RESOLUTION / resolution_m)))


def scale_denominator(zoom: int) -> float:
    """OGC scale denominator of ``zoom`` (0.28 mm pixels), as WMTS capabilities list it."""
    return TMS.matrix(zoom).scaleDenominator


def top_left() -> tuple[float, float]:
    """The grid's top-left corner in metres (west, north)."""
    return _LEFT, _TOP
