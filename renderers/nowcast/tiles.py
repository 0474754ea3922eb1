"""Nowcast pixels: where each pixel's trajectory starts, and the stored value found there.

Pure: the caller reads the source window this module names (anchored on the
zoom's global pixel lattice, so every tile of a zoom samples the very same
source cells) and hands it back.

A departure point rarely falls on a cell's centre: the value there is
interpolated bilinearly between the four cells around it, as pySTEPS'
semi-Lagrangian scheme does. Taking the nearest cell instead moves every
pixel by up to half a cell at random, which costs most at short leads and
high thresholds (``benchmarks/README.md``, ``nowcast_gap.py``). Codes are
linear in the physical value, so blending codes is blending values; where a
neighbour is no coverage or no echo, a blend would mean nothing and the
nearest cell is taken.
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
    # Per output pixel, for cv2.remap's fixed-point maps: the window's cell
    # up and left of the departure point (int16 column, row pairs), and the
    # point's place between it and the next cells in 1/32 of a cell
    # (row * 32 + column); the nearest cell, for where blending cannot be done.
    cells: np.ndarray
    fractions: np.ndarray
    nearest: np.ndarray

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
        # (cv2.remap's fixed-point maps hold int16 cells.)
        if width * height <= MAX_AREA_CELLS and max(width, height) < 2**15:
            break
        step *= 2
    # Cells and weights of the zoom's global lattice around each departure
    # point, found from the point alone (not from where this tile's window
    # starts), so a pixel gets the same value in every tile and scale that draws it.
    column, column_32, column_near = _cells(shift[0], xs[None, :] + origin, step, col0)
    row, row_32, row_near = _cells(-shift[1], origin - ys[:, None], step, row0)
    column, row = np.broadcast_arrays(column, row)
    cells = np.stack([column, row], axis=-1).astype(np.int16)
    nearest = np.stack(np.broadcast_arrays(column_near, row_near), axis=-1).astype(np.int16)
    fractions = (row_32 * INTER_TAB + column_32).astype(np.uint16)
    return SourceWindow(col0, row0, width, height, step, cells, fractions, nearest)


# cv2.remap's fixed-point maps: weights in 1/32 of a cell.
INTER_TAB = cv2.INTER_TAB_SIZE


def sample(area: np.ndarray, window: SourceWindow, nodata: int, no_echo: int | None = None) -> np.ndarray:
    """Codes of the grid: each pixel takes the window's value at its departure point, bilinearly."""
    # Departure points outside the frame (rain from beyond the radars) stay no-data.
    blended = cv2.remap(area, window.cells, window.fractions, interpolation=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=int(nodata))
    special = area == nodata
    if no_echo is not None:
        special |= area == no_echo
    # Float, so the smallest weight (1/1024) on a special cell still counts.
    touched = cv2.remap(special.astype(np.float32), window.cells, window.fractions, interpolation=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=1.0) > 0
    if touched.any():
        nearest = cv2.remap(area, window.nearest, None, interpolation=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=int(nodata))
        blended[touched] = nearest[touched]
    return blended


def _cells(shift: np.ndarray, distance: np.ndarray, step: float, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per departure point along one axis, in the window counted from ``first``: the cell whose
    centre is at or before it, its distance past that centre in 1/32 of a cell, and the cell it lies in.

    Computed in float64 in place from ``(distance + shift) / step``.
    """
    position = shift.astype(np.float64)
    position += distance
    position /= step
    nearest = np.floor(position) - first
    position -= 0.5  # from cell edges to cell centres
    lower = np.floor(position)
    thirty_seconds = np.rint((position - lower) * INTER_TAB)
    carry = thirty_seconds >= INTER_TAB
    lower += carry
    thirty_seconds[carry] = 0
    lower -= first
    return lower, thirty_seconds, nearest


def _centres(left: float, top: float, pixel: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Mercator x of a north-up grid's pixel centres per column, and y per row."""
    return left + (np.arange(width) + 0.5) * pixel, top - (np.arange(height) + 0.5) * pixel


def departure_grid(departures: Departures, left: float, top: float, pixel: float, width: int,
                   height: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Departure points of every pixel centre of a north-up grid (``width`` wide, ``height`` or ``width`` high)."""
    return departures.on_grid(*_centres(left, top, pixel, width, width if height is None else height))
