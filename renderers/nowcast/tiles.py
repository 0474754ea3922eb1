"""Nowcast pixels: where each pixel's trajectory starts, and the stored value found there.

Pure: the caller reads the source window this module names (anchored on the
zoom's global pixel lattice, so every tile of a zoom samples the very same
source cells) and hands it back.

A departure point rarely falls on a cell's centre. The value there is
interpolated bilinearly between the four cells around it, as pySTEPS'
semi-Lagrangian scheme does: taking the cell the point falls in instead moves
every pixel by up to half a cell at random, which costs most at short leads
and high thresholds (``benchmarks/README.md``, ``nowcast_gap.py``). Codes are
linear in the layer's value, so blending codes is blending values: rain rates
in mm/h, reflectivity in dBZ (pySTEPS too interpolates its field in dB).
Where one of the four is no coverage or no echo, a blend would mean nothing
and the cell the point falls in is taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from renderers.nowcast.advection import Departures

# Above this many source cells a read drops to a coarser lattice.
MAX_AREA_CELLS = 4096 * 4096
# cv2.remap interpolates with weights in 1/32 of a cell.
INTER_TAB = cv2.INTER_TAB_SIZE


@dataclass(frozen=True)
class SourceWindow:
    """The cells of the global lattice of ``step`` metres that hold every departure point of a grid."""

    col0: int  # first column and row, counted from the lattice origin (west, north)
    row0: int
    left: float  # the window's top-left corner, Web Mercator metres
    top: float
    width: int
    height: int
    step: float  # metres per cell
    # Per output pixel, the departure point in the window's cells (cell centres at
    # whole numbers), float32 maps for cv2.remap: whole thirty-seconds of a cell,
    # exact in float32, so that cv2's own rounding to 1/32 changes nothing.
    columns: np.ndarray
    rows: np.ndarray


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
    # Cells and weights of the zoom's global lattice around each departure
    # point, found from the point alone (not from where this tile's window
    # starts), so a pixel gets the same value in every tile and scale that draws it.
    columns = _thirty_seconds(shift[0], xs[None, :] + origin, step, col0)
    rows = _thirty_seconds(-shift[1], origin - ys[:, None], step, row0)
    return SourceWindow(col0, row0, -origin + col0 * step, origin - row0 * step, width, height, step, columns, rows)


def sample(area: np.ndarray, window: SourceWindow, nodata: int, no_echo: int | None = None) -> np.ndarray:
    """Codes of the grid: each pixel takes the window's value at its departure point.

    Bilinearly between the four cells around it, or the cell it falls in when
    one of the four is ``nodata`` or ``no_echo``. Departure points outside the
    frame (rain from beyond the radars) stay no-data.
    """
    blended = cv2.remap(area, window.columns, window.rows, interpolation=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=int(nodata))
    special = area == nodata
    if no_echo is not None:
        special |= area == no_echo
    if not special.any():
        return blended
    # A cell is flagged if it or a cell right of it or below it is special: a
    # pixel whose cell up and left is flagged has a special cell among its four.
    flagged = cv2.dilate(special.view(np.uint8), np.ones((2, 2), np.uint8), anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    touched = cv2.remap(flagged, np.floor(window.columns), np.floor(window.rows), interpolation=cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=1).view(bool)
    if touched.any():
        np.copyto(blended, _nearest(area, window, nodata), where=touched)
    return blended


def _nearest(area: np.ndarray, window: SourceWindow, nodata: int) -> np.ndarray:
    return nearest(area, window.columns, window.rows, int(nodata))


def nearest(area: np.ndarray, columns: np.ndarray, rows: np.ndarray, border: float) -> np.ndarray:
    """The cell each point falls in (cell centres at whole numbers; the next cell from half a cell past a centre).

    Points outside ``area`` get ``border``.
    """
    return cv2.remap(area, np.floor(columns + 0.5), np.floor(rows + 0.5), interpolation=cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def _thirty_seconds(shift: np.ndarray, distance: np.ndarray, step: float, first: int) -> np.ndarray:
    """Departure points along one axis in the window's cells, cell centres at whole numbers, rounded to 1/32.

    ``round(32 * ((distance + shift) / step - 0.5 - first)) / 32``, computed in
    float64 in place from the point alone, so a point gets the same weights in every window.
    """
    position = shift.astype(np.float64)
    position += distance
    position *= INTER_TAB / step
    position -= INTER_TAB * (first + 0.5)
    np.rint(position, out=position)
    position *= 1 / INTER_TAB
    return position.astype(np.float32)



def _centres(left: float, top: float, pixel: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Mercator x of a north-up grid's pixel centres per column, and y per row."""
    return left + (np.arange(width) + 0.5) * pixel, top - (np.arange(height) + 0.5) * pixel


def departure_grid(departures: Departures, left: float, top: float, pixel: float, width: int,
                   height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Departure points of every pixel centre of a north-up grid (``width`` wide, ``height`` or ``width`` high)."""
    return departures.on_grid(*_centres(left, top, pixel, width, width if height is None else height))
