"""Stored codes to colours, through a lookup table built once per layer and colormap.

A frame stores integer codes (see :class:`tileserver.core.layers.Encoding`), so every
colour a tile can take is known in advance: decode all codes, colour them once,
and a tile becomes one ``numpy.take``. Interval colormaps give palette indices
(small 8-bit PNGs); continuous ones give RGBA.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import colormaps
from colormaps import RGBA
from tileserver.core.layers import get_layer


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


def check_compatible(layer_id: str, colormap_name: str) -> colormaps.Colormap:
    """The colormap, if it can draw this layer: same units, or a normalised scale."""
    layer = get_layer(layer_id)
    colormap = colormaps.get(colormap_name)
    if colormap.units is not None and colormap.units != layer.units:
        raise ColormapMismatchError(
            f"colormap {colormap_name!r} is in {colormap.units}, layer {layer_id!r} in {layer.units}"
        )
    return colormap


@lru_cache(maxsize=256)
def color_table(layer_id: str, colormap_name: str) -> ColorTable:
    layer = get_layer(layer_id)
    colormap = check_compatible(layer_id, colormap_name)
    values = layer.encoding.decode_table()
    value_range = layer.value_range if colormap.units is None else None
    offset = layer.encoding.table_offset
    if colormap.is_discrete:
        palette = tuple(colormap.palette())
        index = colormap.palette_index(values, value_range).astype(np.uint8)
        # Every invisible class becomes index 0, so "nothing to draw" is one test.
        alpha = np.array([rgba[3] for rgba in palette], dtype=np.uint8)
        index[alpha[index] == 0] = 0
        return ColorTable(index, offset, palette)
    return ColorTable(colormap.rgba(values, value_range).astype(np.uint8), offset, None)
