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
# Trajectories are traced every KNOT pixels and interpolated between.
KNOT = 8


def load_motion(dataset: rasterio.DatasetReader) -> MotionField:
    u, v = dataset.read((1, 2)).astype(np.float32)
    return MotionField(np.nan_to_num(u), np.nan_to_num(v), dataset.transform)


def nowcast_tile(dataset: rasterio.DatasetReader, tile: mercantile.Tile, size: int, field: MotionField, lead_s: float) -> np.ndarray:
    """Codes of a nowcast tile: each pixel takes the stored cell at its departure point."""
    left, bottom, right, top = mercantile.xy_bounds(tile)
    pixel = (right - left) / size
    x0, y0 = departure_grid(field, left, top, pixel, size, lead_s)
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


def departure_grid(field: MotionField, left: float, top: float, pixel: float, size: int, lead_s: float,
                   *, height: int | None = None, knot: int = KNOT) -> tuple[np.ndarray, np.ndarray]:
    """Departure points of every pixel centre of a tile (``size`` wide, ``height`` or ``size`` high).

    Trajectories are traced from a coarse lattice (every ``knot`` pixels, on the
    tile's edges, so on the zoom's global pixel lattice) and their displacements
    interpolated bilinearly: motion varies over tens of kilometres, and this is
    ``knot``² times fewer trajectories. Knots depend only on the zoom's lattice,
    so neighbouring tiles still agree exactly.
    """
    height = size if height is None else height
    kx, ky = np.meshgrid(left + np.arange(-(-size // knot) + 1) * knot * pixel, top - np.arange(-(-height // knot) + 1) * knot * pixel)
    x0, y0 = backtrack(field, kx, ky, lead_s)
    dx, dy = (x0 - kx).astype(np.float32), (y0 - ky).astype(np.float32)
    col, row = np.meshgrid(((np.arange(size) + 0.5) / knot).astype(np.float32), ((np.arange(height) + 0.5) / knot).astype(np.float32))
    dx = cv2.remap(dx, col, row, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    dy = cv2.remap(dy, col, row, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    x, y = np.meshgrid(left + (np.arange(size) + 0.5) * pixel, top - (np.arange(height) + 0.5) * pixel)
    return x + dx, y + dy


def nowcast_point(dataset: rasterio.DatasetReader, lon: float, lat: float, field: MotionField, lead_s: float) -> int | None:
    x, y = mercantile.xy(lon, lat)
    x0, y0 = backtrack(field, np.array([[x]]), np.array([[y]]), lead_s)
    lon0, lat0 = mercantile.lnglat(float(x0[0, 0]), float(y0[0, 0]))
    if not -85.05 < lat0 < 85.05:
        return None
    return read_point(dataset, lon0, lat0)
