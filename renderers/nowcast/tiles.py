"""Nowcast tiles and points: the latest frame, sampled at trajectory departure points."""

from __future__ import annotations

import math

import cv2
import mercantile
import numpy as np
import rasterio

from renderers.nowcast.advection import Departures, MotionField
from tileserver.core.reader import read_area, read_point

# The global Web Mercator pixel lattice starts here; anchoring source reads on it
# makes every tile of a zoom sample the very same source cells.
ORIGIN = 20037508.342789244
# Above this many source cells a read drops to a coarser lattice.
MAX_AREA_CELLS = 4096 * 4096


def load_motion(dataset: rasterio.DatasetReader) -> MotionField:
    u, v = dataset.read((1, 2)).astype(np.float32)
    return MotionField(np.nan_to_num(u), np.nan_to_num(v), dataset.transform)


def nowcast_tile(dataset: rasterio.DatasetReader, tile: mercantile.Tile, size: int, departures: Departures) -> np.ndarray:
    """Codes of a nowcast tile: each pixel takes the stored cell at its departure point."""
    left, bottom, right, top = mercantile.xy_bounds(tile)
    pixel = (right - left) / size
    xs, ys = _centres(left, top, pixel, size, size)
    shift = departures.shift_on_grid(xs, ys)
    # The window holds every departure point (the bounds of the shifts suffice).
    x_min, x_max = xs[0] + float(shift[0].min()), xs[-1] + float(shift[0].max())
    y_min, y_max = ys[-1] + float(shift[1].min()), ys[0] + float(shift[1].max())
    step = pixel
    while True:
        col0 = math.floor((x_min + ORIGIN) / step) - 1
        row0 = math.floor((ORIGIN - y_max) / step) - 1
        width = math.floor((x_max + ORIGIN) / step) - col0 + 2
        height = math.floor((ORIGIN - y_min) / step) - row0 + 2
        if width * height <= MAX_AREA_CELLS:
            break
        step *= 2
    area = read_area(dataset, -ORIGIN + col0 * step, ORIGIN - row0 * step, step, width, height)
    # The cell of the zoom's global lattice under each departure point, found
    # from the point alone (not from where this tile's window starts), so a
    # pixel picks the same cell in every tile and scale that draws it.
    col = _cells(shift[0], xs[None, :] + ORIGIN, step, col0)
    row = _cells(-shift[1], ORIGIN - ys[:, None], step, row0)
    # Nearest, on codes: blending would mix "no coverage" into data. Departure
    # points outside the frame (rain from beyond the radars) stay no-data.
    return cv2.remap(area, col, row, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=int(dataset.nodata))


def _cells(shift: np.ndarray, distance: np.ndarray, step: float, first: int) -> np.ndarray:
    """``floor((distance + shift) / step) - first`` as float32 map coordinates, computed in float64 in place."""
    cells = shift.astype(np.float64)
    cells += distance
    cells /= step
    np.floor(cells, out=cells)
    cells -= first
    return cells.astype(np.float32)


def _centres(left: float, top: float, pixel: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Mercator x of a north-up grid's pixel centres per column, and y per row."""
    return left + (np.arange(width) + 0.5) * pixel, top - (np.arange(height) + 0.5) * pixel


def departure_grid(departures: Departures, left: float, top: float, pixel: float, width: int,
                   height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Departure points of every pixel centre of a north-up grid (``width`` wide, ``height`` or ``width`` high)."""
    return departures.on_grid(*_centres(left, top, pixel, width, width if height is None else height))


def nowcast_point(dataset: rasterio.DatasetReader, lon: float, lat: float, departures: Departures) -> int | None:
    lon0, lat0 = mercantile.lnglat(*departures.at(*mercantile.xy(lon, lat)))
    if not -85.05 < lat0 < 85.05:
        return None
    return read_point(dataset, lon0, lat0)
