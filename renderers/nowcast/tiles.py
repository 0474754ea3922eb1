"""Nowcast pixels: where each pixel's trajectory starts, and the stored cell found there.

Pure: the caller reads the source window this module names (anchored on the
zoom's global pixel lattice, so every tile of a zoom samples the very same
source cells) and hands it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from renderers.nowcast.advection import Departures

# Above this many source cells a read drops to a coarser lattice.
MAX_AREA_CELLS = 4096 * 4096


@dataclass(frozen=True)
class SourceWindow:
    """The cells of the global lattice of ``step`` metres that hold every departure point of a grid."""

    col0: int  # first column and row, counted from the lattice origin (west, north)
    row0: int
    width: int
    height: int
    step: float  # metres per cell
    columns: np.ndarray  # per output pixel: column within the window (float32 map for cv2.remap)
    rows: np.ndarray

    def bounds(self, origin: float) -> tuple[float, float]:
        """The window's top-left corner in Web Mercator metres, for a world from -``origin`` to ``origin``."""
        return -origin + self.col0 * self.step, origin - self.row0 * self.step


def source_window(departures: Departures, left: float, top: float, pixel: float, size: int, origin: float) -> SourceWindow:
    """Which source cells a ``size`` px north-up grid at ``left, top`` (``pixel`` m) needs, and where each pixel looks."""
    xs, ys = _centres(left, top, pixel, size, size)
    shift = departures.shift_on_grid(xs, ys)
    # The window holds every departure point (the bounds of the shifts suffice).
    x_min, x_max = xs[0] + float(shift[0].min()), xs[-1] + float(shift[0].max())
    y_min, y_max = ys[-1] + float(shift[1].min()), ys[0] + float(shift[1].max())
    step = pixel
    while True:
        col0 = math.floor((x_min + origin) / step) - 1
        row0 = math.floor((origin - y_max) / step) - 1
        width = math.floor((x_max + origin) / step) - col0 + 2
        height = math.floor((origin - y_min) / step) - row0 + 2
        if width * height <= MAX_AREA_CELLS:
            break
        step *= 2
    # The cell of the zoom's global lattice under each departure point, found
    # from the point alone (not from where this tile's window starts), so a
    # pixel picks the same cell in every tile and scale that draws it.
    columns = _cells(shift[0], xs[None, :] + origin, step, col0)
    rows = _cells(-shift[1], origin - ys[:, None], step, row0)
    return SourceWindow(col0, row0, width, height, step, columns, rows)


def sample(area: np.ndarray, window: SourceWindow, nodata: int) -> np.ndarray:
    """Codes of the grid: each pixel takes the window's cell at its departure point."""
    # Nearest, on codes: blending would mix "no coverage" into data. Departure
    # points outside the frame (rain from beyond the radars) stay no-data.
    return cv2.remap(area, window.columns, window.rows, interpolation=cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=int(nodata))


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
