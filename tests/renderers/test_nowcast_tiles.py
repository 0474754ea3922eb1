"""Nowcast pixels: the value at a departure point between source cells."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from affine import Affine

from renderers.nowcast.advection import MotionField, trace
from renderers.nowcast.tiles import sample, source_window

ORIGIN = 2_000_000.0  # the lattice runs from -ORIGIN (west) and from ORIGIN (north)
PIXEL = 1_000.0  # metres: the source lattice and the tile's pixels
SIZE = 64
LEAD_S = 600.0
NODATA = 65535


def moved(dx_cells: float, dy_cells: float) -> MotionField:
    """Uniform motion that carries echoes ``dx_cells`` east and ``dy_cells`` south in ``LEAD_S``."""
    u = np.full((20, 20), dx_cells * PIXEL / LEAD_S, np.float32)
    v = np.full((20, 20), -dy_cells * PIXEL / LEAD_S, np.float32)
    return MotionField(u, v, Affine(20 * PIXEL, 0, -200_000.0, 0, -20 * PIXEL, 200_000.0))


def render(area_of: Callable[[np.ndarray, np.ndarray], np.ndarray], field: MotionField, no_echo: int | None = None) -> np.ndarray:
    """A SIZE-pixel tile at the lattice's (100, 100) cell, ``area_of(columns, rows)`` giving codes of global cells."""
    departures = trace(field, LEAD_S)
    left, top = -ORIGIN + 100 * PIXEL, ORIGIN - 100 * PIXEL
    window = source_window(departures, left, top, PIXEL, SIZE, ORIGIN)
    assert window.step == PIXEL
    rows, columns = np.mgrid[window.row0 : window.row0 + window.height, window.col0 : window.col0 + window.width]
    area = area_of(columns, rows).astype(np.uint16)
    return sample(area, window, NODATA) if no_echo is None else sample(area, window, NODATA, no_echo)


@pytest.mark.parametrize("dx, dy", [(0.25, 0.0), (2.4, -1.3), (-0.5, 0.75)])
def test_a_departure_between_cells_takes_the_value_between_them(dx: float, dy: float) -> None:
    """On a ramp of codes, a pixel gets the ramp's value at its departure point, not the nearest cell's.

    The nearest cell is off by up to half a cell in each direction: 25 codes on this ramp.
    """
    ramp = lambda columns, rows: 1000 + 50 * columns + 20 * rows  # noqa: E731
    codes = render(ramp, moved(dx, dy)).astype(np.float64)
    # Pixel (i, j) is the centre of global cell (100 + i, 100 + j); it departs from dx, dy cells back.
    j, i = np.mgrid[0:SIZE, 0:SIZE]
    expected = ramp(100 + i - dx, 100 + j - dy)
    assert np.abs(codes - expected).max() <= 1.0  # fixed-point weights (1/32 of a cell) and rounding


def test_no_coverage_and_no_echo_are_never_blended_into_values() -> None:
    """Beside a no-coverage or no-echo cell the pixel takes the nearest cell, a code that is there."""
    stripes = lambda columns, rows: np.where(columns % 4 == 0, NODATA, np.where(columns % 4 == 1, 0, 300))  # noqa: E731
    codes = render(stripes, moved(0.5, 0.3), no_echo=0)
    assert set(np.unique(codes)) <= {NODATA, 0, 300}
    assert {NODATA, 0, 300} <= set(np.unique(codes))
    # Without a no-echo code, 0 is an ordinary value and blends with its neighbours.
    codes = render(stripes, moved(0.5, 0.3))
    assert not set(np.unique(codes)) <= {NODATA, 0, 300}
    assert (codes[codes != NODATA] <= 300).all()


def test_a_pixel_on_a_cell_centre_takes_that_cell() -> None:
    """Whole-cell moves reproduce the source exactly: interpolation adds nothing where none is needed."""
    rng = np.random.default_rng(3)
    table = rng.integers(0, 5000, size=(400, 400))
    codes = render(lambda columns, rows: table[rows - 50, columns - 50], moved(3.0, -2.0))
    j, i = np.mgrid[0:SIZE, 0:SIZE]
    np.testing.assert_array_equal(codes, table[100 + j + 2 - 50, 100 + i - 3 - 50])
