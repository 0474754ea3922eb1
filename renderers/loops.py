"""Drawing and encoding animated loops: tile mosaics, stamps, timelines, outlines, WebP, GIF and APNG.

Pure: images and bytes in, images and bytes out. Which frames a loop shows and
where its tiles come from is decided in ``tileserver.service.loops``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import mercantile
import numpy as np
import pyproj
from PIL import Image, ImageDraw, ImageFont

from renderers.png import transparent_png

log = logging.getLogger(__name__)

Bbox = tuple[float, float, float, float]  # west, south, east, north in degrees
TILE_SIZE = 256
MAX_LAT = 85.0511287798066
_TO_MERCATOR = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)

BACKGROUND = (38, 40, 44)
OBSERVED_BOX = (0, 0, 0, 150)
FORECAST_BOX = (214, 120, 0, 210)
FORECAST_BORDER = (255, 153, 0)  # opaque: marks a forecast frame at its edges
FORECAST_BORDER_PX = 3
TEXT = (255, 255, 255, 255)
GRATICULE = (255, 255, 255, 64)
GRATICULE_UNDER_OUTLINES = (255, 255, 255, 36)  # fainter, so borders stand out
GRATICULE_TEXT = (220, 220, 220, 200)
TIMELINE_PX = 4
TIMELINE_OBSERVED = (110, 110, 110)
TIMELINE_FORECAST = (150, 90, 0)
TIMELINE_CURRENT = (255, 255, 255)
GRATICULE_STEPS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 45.0, 90.0)
OUTLINES_FORMAT = "wxtiles-outlines/1"
# Drawn in this order, opaque and unantialiased (few colours: GIF frames keep an exact palette).
OUTLINE_STYLE = {"states": (112, 118, 126, 255), "borders": (190, 194, 200, 255), "coastline": (190, 194, 200, 255)}


class Stamp(Protocol):
    """What a frame's stamp says: its time, and a forecast marker or None for an observation."""

    @property
    def label(self) -> str: ...  # "2026-11-27 21:40Z"

    @property
    def forecast(self) -> str | None: ...  # "Forecast +25 min"


def mosaic(bodies: list[bytes], columns: int, box: tuple[float, float, float, float], size: tuple[int, int]) -> Image.Image:
    """PNG tiles (row by row, ``columns`` across) resampled onto an image of ``size``: its ``box`` in mosaic pixels.

    Nearest-neighbour, RGBA: every colour stays a colormap class, with no blends of "no data" into data.
    """
    rows = math.ceil(len(bodies) / columns)
    image = Image.new("RGBA", (columns * TILE_SIZE, rows * TILE_SIZE), (0, 0, 0, 0))
    empty = transparent_png(TILE_SIZE)
    for index, body in enumerate(bodies):
        if body == empty:
            continue
        row, col = divmod(index, columns)
        with Image.open(io.BytesIO(body)) as tile:
            image.paste(tile.convert("RGBA"), (col * TILE_SIZE, row * TILE_SIZE))
    return image.resize(size, Image.Resampling.NEAREST, box=box)


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font only
        return ImageFont.load_default()


def font_size(width: int) -> int:
    return max(11, min(20, round(width / 50)))


def stamp_text(frame: Stamp) -> str:
    return frame.label + (f"  {frame.forecast}" if frame.forecast else "")


def stamp_box(image_width: int, frame: Stamp) -> tuple[int, int, int, int]:
    """Where the time stamp's box goes: (left, top, right, bottom), the frame's top-left corner."""
    size = font_size(image_width)
    _, _, right, bottom = font(size).getbbox(stamp_text(frame))
    pad = max(4, size // 3)
    return 0, 0, min(image_width, int(right) + 2 * pad), int(bottom) + 2 * pad


def decorate(image: Image.Image, frames: Sequence[Stamp], index: int, antialias: bool = True) -> Image.Image:
    """The RGB frame from ``image`` (RGBA, drawn on in place): stamp the frame's time (and forecast marker) and draw the timeline and forecast border."""
    frame = frames[index]
    width, height = image.size
    size = font_size(width)
    face = font(size)
    pad = max(4, size // 3)
    box = stamp_box(width, frame)
    layer = Image.new("RGBA", (box[2] - box[0], box[3] - box[1]), FORECAST_BOX if frame.forecast else OBSERVED_BOX)
    draw = ImageDraw.Draw(layer)
    draw.fontmode = "L" if antialias else "1"
    draw.text((pad, pad), stamp_text(frame), font=face, fill=TEXT)
    image.alpha_composite(layer, (box[0], box[1]))
    image = image.convert("RGB")
    draw = ImageDraw.Draw(image)
    # Timeline: one segment per frame along the bottom edge.
    count = len(frames)
    for k, other in enumerate(frames):
        x0, x1 = round(k * width / count), round((k + 1) * width / count) - 1
        colour = TIMELINE_CURRENT if k == index else TIMELINE_FORECAST if other.forecast else TIMELINE_OBSERVED
        draw.rectangle((x0, height - TIMELINE_PX, max(x0, x1 - 1), height - 1), fill=colour)
    if frame.forecast:
        draw.rectangle((0, 0, width - 1, height - 1), outline=FORECAST_BORDER, width=FORECAST_BORDER_PX)
    return image


@dataclass(frozen=True)
class Outlines:
    digest: str  # of the file: part of loop ETags
    lines: dict[str, list[np.ndarray]]  # per layer: (n, 2) lon/lat arrays
    bounds: dict[str, np.ndarray]  # per layer: (lines, 4) west, south, east, north
    attribution: str


def load_outlines(path: Path) -> Outlines | None:
    """The outline file's lines, or None when it is missing or unreadable (then: graticule only)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _load_outlines(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=2)
def _load_outlines(path: str, mtime_ns: int, size: int) -> Outlines | None:
    try:
        raw = Path(path).read_bytes()
        data = json.loads(raw)
        if data.get("format") != OUTLINES_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}, not {OUTLINES_FORMAT!r}")
        scale = float(data.get("scale", 100))
        lines: dict[str, list[np.ndarray]] = {}
        bounds: dict[str, np.ndarray] = {}
        for name in OUTLINE_STYLE:
            # Delta-encoded integer pairs: lon = x / scale, lat = y / scale.
            decoded = [np.cumsum(np.asarray(flat, np.float64).reshape(-1, 2), axis=0) / scale for flat in data["layers"].get(name, [])]
            lines[name] = [line for line in decoded if len(line) >= 2]
            bounds[name] = np.array([[*line.min(axis=0), *line.max(axis=0)] for line in lines[name]]).reshape(-1, 4)
        return Outlines(hashlib.sha256(raw).hexdigest()[:12], lines, bounds, str(data.get("attribution", "")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("loops: outlines %s unusable (%s); outlines=1 draws the graticule only", path, exc)
        return None


def outline_source(path: Path) -> str:
    """What ``outlines=1`` draws, for ETags: the outline file's digest, or the graticule alone."""
    outlines = load_outlines(path)
    return f"outlines:{outlines.digest}" if outlines else "graticule"


def draw_outlines(layer: Image.Image, bbox: Bbox, outlines: Outlines) -> None:
    """Coastlines and borders inside the bbox, onto the RGBA ``layer``."""
    west, south, east, north = bbox
    x0, y0 = mercantile.xy(west, south)
    x1, y1 = mercantile.xy(east, north)
    sx, sy = layer.width / (x1 - x0), layer.height / (y1 - y0)
    draw = ImageDraw.Draw(layer)
    for name, colour in OUTLINE_STYLE.items():
        bounds = outlines.bounds[name]
        if not len(bounds):
            continue
        near = (bounds[:, 0] <= east) & (bounds[:, 2] >= west) & (bounds[:, 1] <= north) & (bounds[:, 3] >= south)
        for index in np.flatnonzero(near):
            lon, lat = outlines.lines[name][index].T
            x, y = _TO_MERCATOR.transform(lon, np.clip(lat, -MAX_LAT, MAX_LAT))
            x, y = (x - x0) * sx, (y1 - y) * sy
            draw.line(list(zip(x.tolist(), y.tolist())), fill=colour, width=1)


def graticule(bbox: Bbox, width: int, height: int, outlines: Outlines | None) -> Image.Image:
    """Coastlines and borders (``outlines``, if any), lat/lon lines and labels: an RGBA overlay."""
    west, south, east, north = bbox
    x0, y0 = mercantile.xy(west, south)
    x1, y1 = mercantile.xy(east, north)
    step = next((s for s in GRATICULE_STEPS if (east - west) / s <= 8 and (north - south) / s <= 8), 90.0)
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    lines = ImageDraw.Draw(layer)
    line_colour = GRATICULE if outlines is None else GRATICULE_UNDER_OUTLINES
    labels = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    text = ImageDraw.Draw(labels)
    text.fontmode = "1"
    face = font(max(10, font_size(width) - 3))
    decimals = 0 if step >= 1 else 2 if step < 0.5 else 1
    label_height = sum(face.getmetrics()) if hasattr(face, "getmetrics") else 11
    lon = math.ceil(west / step) * step
    while lon <= east:
        x = round((mercantile.xy(lon, 0)[0] - x0) / (x1 - x0) * width)
        lines.line((x, 0, x, height), fill=line_colour)
        label = f"{abs(lon):.{decimals}f}°{'W' if lon < 0 else 'E' if lon > 0 else ''}"
        if x + 3 + face.getlength(label) < width - 4:
            text.text((x + 3, height - TIMELINE_PX - 3), label, font=face, fill=GRATICULE_TEXT, anchor="ld")
        lon += step
    lat = math.ceil(south / step) * step
    while lat <= north:
        y = round((y1 - mercantile.xy(0, lat)[1]) / (y1 - y0) * height)
        lines.line((0, y, width, y), fill=line_colour)
        label = f"{abs(lat):.{decimals}f}°{'S' if lat < 0 else 'N' if lat > 0 else ''}"
        # Clear of the top edge and of the longitude labels along the bottom.
        if label_height + 2 < y < height - TIMELINE_PX - 2 * label_height - 4:
            text.text((width - 4, y - 2), label, font=face, fill=GRATICULE_TEXT, anchor="rd")
        lat += step
    if outlines is not None:
        draw_outlines(layer, bbox, outlines)
    layer.alpha_composite(labels)
    return layer


# -- encoding -----------------------------------------------------------------


def encode_loop(frames: Iterable[Image.Image], durations: tuple[int, ...] | list[int], fmt: str) -> bytes:
    """WebP (lossless), GIF or APNG from frames in order; loops forever.

    WebP frames go to the encoder as they arrive. GIF and APNG writers need every
    frame before they write, so each is kept as palette indices (a byte a pixel)
    on its exact colours, then all move to one shared palette when the loop uses
    at most 256 colours; a frame of more colours is quantised on its own.
    """
    buffer = io.BytesIO()
    durations = list(durations)
    count = len(durations)
    if fmt == "webp":
        # Lossless keeps class colours and the stamp crisp. Method 1 is half the
        # size of method 0 for twice the time; higher methods gain little more.
        sequence = _FrameSequence(iter(frames), count)
        sequence.save(
            buffer, format="WEBP", save_all=True, duration=durations, loop=0, lossless=True, quality=50, method=1,
        )
    elif fmt == "gif":
        paletted = _shared_palette([_indexed(image) for image in frames])
        paletted[0].save(buffer, format="GIF", save_all=True, append_images=paletted[1:], duration=durations, loop=0, disposal=1)
    elif fmt == "png":
        paletted = _shared_palette([_indexed(image, quantise=False) for image in frames])
        paletted[0].save(
            buffer, format="PNG", save_all=True, append_images=paletted[1:], duration=durations, loop=0,
            disposal=0, blend=0, compress_level=6,
        )
    else:
        raise ValueError(f"unknown loop format {fmt!r}")
    return buffer.getvalue()


class _FrameSequence(Image.Image):
    """Frames from an iterator as one multi-frame image, which Pillow's writers
    seek through in order: each frame is drawn when the encoder reaches it and
    dropped after (the first is kept, for the writer's seek back to it)."""

    def __init__(self, frames: Iterator[Image.Image], count: int) -> None:
        super().__init__()
        self._frames = frames
        self.n_frames = count
        self.is_animated = count > 1
        self._first = next(frames)
        self._index = 0
        self._show(self._first)

    def _show(self, image: Image.Image) -> None:
        self.im = image.im
        self._mode = image.mode
        self._size = image.size

    def seek(self, frame: int) -> None:
        if frame == self._index:
            return
        if frame == 0:
            self._show(self._first)
        elif frame == self._index + 1 and frame < self.n_frames:
            self._show(next(self._frames))
        else:
            raise EOFError(f"frame {frame}: a loop's frames are drawn once, in order")
        self._index = frame

    def tell(self) -> int:
        return self._index


Colours = list[tuple[int, int, int]]


def _indexed(image: Image.Image, quantise: bool = True) -> tuple[Image.Image, Colours | None]:
    """The frame as palette indices on exactly its colours, and those colours; above
    256 colours, quantised (or, with ``quantise=False``, the RGB frame) and None."""
    used = image.getcolors(256)
    if used is None:
        return (image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) if quantise else image), None
    colours = sorted(colour for _, colour in used)
    return _on_palette(image, colours), colours


def _on_palette(image: Image.Image, colours: Colours) -> Image.Image:
    """``image`` (RGB) as indices into ``colours``, which must hold all its colours, sorted.

    (Pillow's ``quantize(palette=...)`` maps through a coarse colour cache, so it
    can shift a colour that is in the palette; this mapping is exact.)
    """
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in colours], np.uint32)
    rgb = np.asarray(image, np.uint32)
    index = np.searchsorted(keys, (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).astype(np.uint8)
    return _paletted(index, colours)


def _paletted(index: np.ndarray, colours: Colours) -> Image.Image:
    frame = Image.fromarray(index, "L").convert("P")
    frame.putpalette([channel for colour in colours for channel in colour])
    return frame


def _shared_palette(frames: list[tuple[Image.Image, Colours | None]]) -> list[Image.Image]:
    """Exactly paletted frames moved onto one palette of all their colours, when there are at most 256
    (one palette for the whole file); otherwise the frames as they are."""
    images = [image for image, _ in frames]
    if any(colours is None for _, colours in frames):
        return images
    ordered = sorted({colour for _, colours in frames for colour in colours or ()})
    if len(ordered) > 256:
        return images
    position = {colour: k for k, colour in enumerate(ordered)}
    shared = []
    for image, colours in frames:
        lut = np.array([position[colour] for colour in colours or ()], np.uint8)
        shared.append(_paletted(lut[np.asarray(image)], ordered))
    return shared
