"""Legend images: a horizontal colour bar with tick labels and units, drawn with Pillow."""

import io
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .ticks import display_units, format_value, nice_ticks

if TYPE_CHECKING:
    from .model import Colormap

MAX_WIDTH = 2000
MAX_HEIGHT = 500

BACKGROUND = (255, 255, 255, 255)
INK = (34, 34, 34, 255)
CHECKER_LIGHT = (255, 255, 255, 255)
CHECKER_DARK = (204, 204, 204, 255)
CHECKER_SIZE = 4
TICK_LENGTH = 3
LABEL_GAP = 4  # minimum free pixels between neighbouring labels

Tick = tuple[float, str]  # (x offset within the bar in pixels, label)


def render_legend(
    cmap: "Colormap", width: int, height: int, value_range: Sequence[float] | None = None
) -> bytes:
    """Render `cmap` as a PNG legend of exactly width x height pixels."""
    width = _check_size("width", width, MAX_WIDTH)
    height = _check_size("height", height, MAX_HEIGHT)
    if cmap.normalized and value_range is None:
        value_range = (0.0, 1.0)

    font = ImageFont.load_default(size=max(8, min(16, round(height * 0.24))))
    ascent, descent = font.getmetrics()
    label_height = ascent + descent
    # Tiny images get no margin: the bar alone is still a useful swatch.
    pad = 2 if min(width, height) >= 8 else 0

    units = display_units(cmap.units) if cmap.units else ""
    units_width = int(np.ceil(font.getlength(units))) if units else 0
    bar_width = width - 2 * pad - units_width - LABEL_GAP
    show_units = bool(units) and bar_width >= width // 2 and height - 2 * pad >= label_height
    if not show_units:
        bar_width = max(1, width - 2 * pad)

    bar_height = height - 2 * pad - TICK_LENGTH - label_height
    show_labels = bar_height >= label_height
    if not show_labels:
        bar_height = max(1, height - 2 * pad)

    if cmap.is_discrete:
        row, ticks = _interval_bar(cmap, bar_width, value_range)
    else:
        row, ticks = _continuous_bar(cmap, bar_width, value_range)

    image = Image.new("RGBA", (width, height), BACKGROUND)
    bar = _checker(bar_width, bar_height)
    # Compositing over a checkerboard keeps transparent and translucent classes visible.
    bar.alpha_composite(Image.fromarray(np.ascontiguousarray(np.repeat(row[np.newaxis], bar_height, axis=0))))
    image.paste(bar, (pad, pad))
    draw = ImageDraw.Draw(image)
    if pad:
        draw.rectangle((pad - 1, pad - 1, pad + bar_width, pad + bar_height), outline=INK)
    if show_labels:
        _draw_ticks(draw, font, ticks, left=pad, top=pad + bar_height, width=width, bar_width=bar_width)
    if show_units:
        draw.text(
            (pad + bar_width + LABEL_GAP, pad + bar_height / 2), units, font=font, fill=INK, anchor="lm"
        )

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _check_size(what: str, value: int, maximum: int) -> int:
    try:
        size = operator.index(value)  # ints and numpy ints, but not 12.5 or "300"
    except TypeError:
        raise ValueError(f"legend {what} must be an integer, got {value!r}") from None
    if not 1 <= size <= maximum:
        raise ValueError(f"legend {what} must be between 1 and {maximum}, got {size}")
    return size


def _interval_bar(
    cmap: "Colormap", bar_width: int, value_range: Sequence[float] | None
) -> tuple[np.ndarray, list[Tick]]:
    """Equal-width boxes, one per class, each labelled with its lower bound."""
    bounds = cmap.stop_values(value_range)
    colors = list(cmap.rgba(bounds, value_range))
    labels = [format_value(float(v)) for v in bounds]
    assert cmap.below is not None
    # An invisible below class (the usual case) would only waste a box.
    if cmap.below[3] > 0:
        colors.insert(0, np.array(cmap.below, dtype=np.uint8))
        labels.insert(0, "")
    edges = np.round(np.linspace(0, bar_width, len(colors) + 1)).astype(int)
    row = np.zeros((bar_width, 4), dtype=np.uint8)
    for color, start, stop in zip(colors, edges[:-1], edges[1:]):
        row[start:stop] = color
    ticks = [(float(x), label) for x, label in zip(edges[:-1], labels) if label]
    return row, ticks


def _continuous_bar(
    cmap: "Colormap", bar_width: int, value_range: Sequence[float] | None
) -> tuple[np.ndarray, list[Tick]]:
    """A gradient over the stop range with round-numbered ticks."""
    stops = cmap.stop_values(value_range)
    lo, hi = float(stops[0]), float(stops[-1])
    # The first and last pixel columns show exactly the end values, so the
    # ticks are placed on the same column scale.
    row = cmap.rgba(np.linspace(lo, hi, bar_width), value_range)
    last_column = max(1, bar_width - 1)
    ticks = [((t - lo) / (hi - lo) * last_column, format_value(t)) for t in nice_ticks(lo, hi)]
    return row, ticks


def _checker(width: int, height: int) -> Image.Image:
    ys, xs = np.indices((height, width))
    dark = ((xs // CHECKER_SIZE + ys // CHECKER_SIZE) % 2).astype(bool)
    pixels = np.where(dark[..., np.newaxis], CHECKER_DARK, CHECKER_LIGHT).astype(np.uint8)
    return Image.fromarray(pixels)


def _draw_ticks(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    ticks: list[Tick],
    left: int,
    top: int,
    width: int,
    bar_width: int,
) -> None:
    """Draw tick marks and labels under the bar, thinning them evenly until none overlap."""
    placed = []
    for offset, label in ticks:
        x = left + min(round(offset), bar_width - 1)
        text_width = font.getlength(label)
        # Keep end labels inside the image rather than centred on their tick.
        text_left = min(max(0.0, x - text_width / 2), width - text_width)
        placed.append((x, text_left, text_width, label))

    kept = placed
    for stride in range(1, len(placed) + 1):
        kept = placed[::stride]
        if all(a[1] + a[2] + LABEL_GAP <= b[1] for a, b in zip(kept, kept[1:])):
            break

    # `top` is the bar's outline row; ticks hang below it.
    for x, text_left, _, label in kept:
        draw.line((x, top + 1, x, top + TICK_LENGTH), fill=INK)
        draw.text((text_left, top + TICK_LENGTH + 1), label, font=font, fill=INK, anchor="la")
