"""Nowcast tiles and points: the latest frame, sampled at trajectory departure points."""

from __future__ import annotations

import math

import cv2
import mercantile
import numpy as np
import rasterio

from renderers.nowcast.advection import Departures, MotionField
from tileserver.reader import read_area, read_point

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
    x0, y0 = departure_grid(departures, left, top, pixel, size)
    step = pixel
    while True:
        area_left = -ORIGIN + math.floor((x0.min() + ORIGIN) / step) * step - step
        area_top = ORIGIN - math.floor((ORIGIN - y0.max()) / step) * step + step
        width = math.ceil((x0.max() - area_left) / step) + 2
        height = math.ceil((area_top - y0.min()) / step) + 2
        if width * height <= MAX_AREA_CELLS:
            break
        step *= 2
    area = read_area(dataset, area_left, area_top, step, width, height)
    col = ((x0 - area_left) / step - 0.5).astype(np.float32)
    row = ((area_top - y0) / step - 0.5).astype(np.float32)
    # Nearest, on codes: blending would mix "no coverage" into data. Departure
    # points outside the frame (rain from beyond the radars) stay no-data.
    return cv2.remap(area, col, row, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=int(dataset.nodata))


def departure_grid(departures: Departures, left: float, top: float, pixel: float, width: int,
                   height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Departure points of every pixel centre of a north-up grid (``width`` wide, ``height`` or ``width`` high)."""
    height = width if height is None else height
    return departures.on_grid(left + (np.arange(width) + 0.5) * pixel, top - (np.arange(height) + 0.5) * pixel)


def nowcast_point(dataset: rasterio.DatasetReader, lon: float, lat: float, departures: Departures) -> int | None:
    lon0, lat0 = mercantile.lnglat(*departures.at(*mercantile.xy(lon, lat)))
    if not -85.05 < lat0 < 85.05:
        return None
    return read_point(dataset, lon0, lat0)
