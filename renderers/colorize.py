"""Stored codes to colours, through a lookup table built once per layer and colormap.

A frame stores integer codes, so every colour a tile can take is known in advance: decode all codes, colour them once,
and a tile becomes one ``numpy.take``. Interval colormaps give palette indices
(small 8-bit PNGs); continuous ones give RGBA.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import colormaps
from colormaps import RGBA


class ColormapMismatchError(ValueError):
    pass


@dataclass(frozen=True)
class ColorTable:
    # Per code: palette index (uint8, shape (n,)) or RGBA (uint8, shape (n, 4)).
    table: np.ndarray
    # Added to a code to index ``table`` (int16 codes start at -32768).
    offset: int
    palette: tuple[RGBA, ...] | None

    def apply(self, codes: np.ndarray) -> np.ndarray:
        index = codes.astype(np.int32) + self.offset if self.offset else codes
        return np.take(self.table, index, axis=0)


def check_compatible(units: str, colormap: colormaps.Colormap, what: str) -> None:
    """Raise unless ``colormap`` can draw values in ``units``: the same units, or a normalised scale."""
    if colormap.units is not None and colormap.units != units:
        raise ColormapMismatchError(f"colormap {colormap.name!r} is in {colormap.units}, {what} in {units}")


def color_table(values: np.ndarray, offset: int, value_range: tuple[float, float], colormap: colormaps.Colormap) -> ColorTable:
    """The colour of every code: ``values`` are the codes decoded, ``offset`` maps a code to its index.

    A normalised colormap (no units) spans ``value_range``; one with units draws the values as they are.
    """
    span = value_range if colormap.units is None else None
    if colormap.is_discrete:
        palette = tuple(colormap.palette())
        index = colormap.palette_index(values, span).astype(np.uint8)
        # Every invisible class becomes index 0, so "nothing to draw" is one test.
        alpha = np.array([rgba[3] for rgba in palette], dtype=np.uint8)
        index[alpha[index] == 0] = 0
        return ColorTable(index, offset, palette)
    return ColorTable(colormap.rgba(values, span).astype(np.uint8), offset, None)
