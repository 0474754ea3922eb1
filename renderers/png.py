"""Encode tiles: colour PNGs (palette or RGBA) and raw float32 ``.npy`` values."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image

from renderers.colorize import ColorTable

# Palette PNGs are small; a higher zlib level pays off. RGBA tiles are 4x the
# pixels and level 1 keeps encoding cheap at a modest size cost.
PALETTE_COMPRESS_LEVEL = 6
RGBA_COMPRESS_LEVEL = 1


@lru_cache(maxsize=4)
def transparent_png(size: int) -> bytes:
    """The one shared fully transparent tile, for empty and out-of-bounds tiles."""
    image = Image.new("P", (size, size), 0)
    image.putpalette([0, 0, 0])
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0, optimize=True)
    return buffer.getvalue()


def render_png(codes: np.ndarray, table: ColorTable) -> bytes:
    """Colour a tile of codes; a tile with nothing visible is the shared transparent PNG."""
    pixels = table.apply(codes)
    height, width = codes.shape
    if table.palette is not None:
        if not pixels.any():
            return transparent_png(width)
        image = Image.frombuffer("P", (width, height), np.ascontiguousarray(pixels), "raw", "P", 0, 1)
        image.putpalette([channel for rgba in table.palette for channel in rgba[:3]])
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", transparency=bytes(rgba[3] for rgba in table.palette), compress_level=PALETTE_COMPRESS_LEVEL)
        return buffer.getvalue()
    if not pixels[..., 3].any():
        return transparent_png(width)
    image = Image.frombuffer("RGBA", (width, height), np.ascontiguousarray(pixels), "raw", "RGBA", 0, 1)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=RGBA_COMPRESS_LEVEL)
    return buffer.getvalue()


def render_npy(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, values.astype(np.float32, copy=False), allow_pickle=False)
    return buffer.getvalue()
