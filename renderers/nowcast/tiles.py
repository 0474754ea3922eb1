"""Nowcast tiles and points: the latest frame, sampled at trajectory departure points."""

from __future__ import annotations

import math

import cv2
import mercantile
import numpy as np
import rasterio

from renderers.nowcast.advection import MotionField, backtrack
from tileserver.reader import read_area, read_point

# The global Web Mercator pixel lattice starts here; anchoring source reads on it
# makes every tile of a zoom sample the very same source cells.
ORIGIN = 20037508.342789244
# Above this many source cells a read drops to a coarser lattice.
MAX_AREA_CELLS = 4096 * 4096


def load_motion(dataset: rasterio.DatasetReader) -> MotionField:
    u, v = dataset.read((1, 2)).astype(np.float32)
    return MotionField(np.nan_to_num(u), np.nan_to_num(v), dataset.transform)


def nowcast_tile(dataset: rasterio.DatasetReader, tile: mercantile.Tile, size: int, field: MotionField, lead_s: float) -> np.ndarray:
    """Codes of a nowcast tile: each pixel takes the stored cell at its departure point."""
    left, bottom, right, top = mercantile.xy_bounds(tile)
    pixel = (right - left) / size
    centres = (np.arange(size) + 0.5) * pixel
    x, y = np.meshgrid(left + centres, top - centres)
    x0, y0 = backtrack(field, x, y, lead_s)
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


def nowcast_point(dataset: rasterio.DatasetReader, lon: float, lat: float, field: MotionField, lead_s: float) -> int | None:
    x, y = mercantile.xy(lon, lat)
    x0, y0 = backtrack(field, np.array([[x]]), np.array([[y]]), lead_s)
    lon0, lat0 = mercantile.lnglat(float(x0[0, 0]), float(y0[0, 0]))
    if not -85.05 < lat0 < 85.05:
        return None
    return read_point(dataset, lon0, lat0)
