"""Animated loops: a layer's recent frames and its nowcast over a lon/lat box, as WebP, GIF or APNG.

Framework-free, like :mod:`tileserver.service.tiles`: the HTTP route only calls

    request = loop_params(layer_id, fmt, query, horizon_min=settings.nowcast_horizon_min)
    plan = plan_loop(service, request)          # frames, ETag, Cache-Control: no rendering (for 304s)
    body, media_type, etag = render_loop(service, request, plan)

How a loop is made:

- **Frames.** The last ``frames`` stored frames ending at ``time`` (``latest`` or an
  ISO time naming a stored frame), then, when that end is the layer's latest
  observation, its nowcast frames up to ``nowcast`` minutes ahead (the same
  :class:`~tileserver.service.tiles.Target` objects the tile URLs resolve to). Forecast
  (model) layers loop over their visible valid times (newest run per time).
- **Pixels.** Each frame is composed from the service's own 256-px colour tiles
  (``TileService.render_tile``), so nowcasts, colormaps and the tile cache all come
  for free and a loop drawn after a viewer panned the same area is mostly cache
  hits. The zoom is the one whose pixel size is nearest the loop's in Web
  Mercator (in log scale, so the tile mosaic is resampled by a factor between
  0.71 and 1.41). Resampling is nearest-neighbour, so colours stay exactly the
  colormap's classes (a discrete scale gives a GIF without dithering).
- **Drawing.** Over a neutral dark background. Optional ``outlines=1`` draws
  coastlines, country and US state borders from the viewer's
  ``frontend/outlines.json`` (Natural Earth, US Census) and a labelled lat/lon
  graticule; without that file, the graticule alone. Every
  frame is stamped with its UTC time on a semi-opaque box; forecast frames
  (nowcasts, model frames) get an amber box saying ``Forecast +25 min`` and an
  amber border. A thin timeline along the bottom shows where the frame is in
  the loop (observed grey, forecast amber, current white).
- **Timing.** ``delay`` ms per frame, ``hold`` ms more on the last observed
  frame, looping forever (GIF stores 10 ms units). A one-frame loop is a still image.
- **Caching.** The ETag is a hash of every frame's identity (``Target.identity``,
  which changes with a new observation, a new motion field or a new model run)
  and the drawing parameters. The encoded loop is kept in the service's tile LRU
  under that ETag.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import mercantile
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from renderers.png import transparent_png
from tileserver.service.errors import BadRequest, NotFound
from tileserver.core.layers import Layer
from tileserver.service.params import FrameTime, TileRequest, colormap_name_param, layer_param, time_param
from tileserver.service.tiles import RENDER_VERSION, Target, TileService
from tileserver.core.timeutil import format_utc

log = logging.getLogger(__name__)

# Bump when loop drawing changes, so cached loops and client ETags are refreshed.
LOOP_VERSION = "1"

LoopFormat = Literal["webp", "gif", "png"]
MEDIA_TYPES: dict[str, str] = {"webp": "image/webp", "gif": "image/gif", "png": "image/png"}  # png = APNG

# -- limits -------------------------------------------------------------------
DEFAULT_WIDTH = 800
MIN_SIDE = 64  # px, width and derived height (the time stamp needs room)
MAX_SIDE = 1600  # px, width and derived height
DEFAULT_FRAMES = 12
MAX_FRAMES = 48  # observed (or model) frames
DEFAULT_NOWCAST_MIN = 60  # minutes of nowcast, capped at the server's horizon
DEFAULT_DELAY_MS, MIN_DELAY_MS, MAX_DELAY_MS = 250, 20, 2000
DEFAULT_HOLD_MS, MAX_HOLD_MS = 1000, 10000
# width x height x frames, summed over all frames. 40 MP is 800x600 with every
# frame (48 observed + 24 nowcast), or 1280x720 with 43; it bounds the memory
# of a request to ~120 MB of RGB frames plus the encoder's.
MAX_TOTAL_PIXELS = 40_000_000
MAX_LAT = 85.0511287798066
# A loop pinned to a time-stamped frame changes only when a frame is backfilled
# into its window or pruned out of it.
PINNED_MAX_AGE_S = 3600
# Frames drawn concurrently for one loop (GDAL reads, PNG decoding and compositing release the GIL).
FRAME_WORKERS = max(2, min(4, os.cpu_count() or 2))
TILE_SIZE = 256
ORIGIN = 20037508.342789244  # half the Web Mercator world, metres

# -- drawing ------------------------------------------------------------------
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
# Coastlines, country and US state borders, as the viewer draws them without a
# basemap (``wxtiles-outlines/1``, built by frontend/tools/build-outlines.mjs).
# Without the file, ``outlines=1`` draws the graticule alone.
OUTLINES_PATH = Path(__file__).resolve().parent.parent / "tileserver" / "viewer" / "outlines.json"  # an installed wheel
if not OUTLINES_PATH.is_file():
    OUTLINES_PATH = OUTLINES_PATH.parents[2] / "frontend" / "outlines.json"  # a checkout
OUTLINES_FORMAT = "wxtiles-outlines/1"
# Drawn in this order, opaque and unantialiased (few colours: GIF frames keep an exact palette).
OUTLINE_STYLE = {"states": (112, 118, 126, 255), "borders": (190, 194, 200, 255), "coastline": (190, 194, 200, 255)}


@dataclass(frozen=True)
class LoopRequest:
    layer: Layer
    format: LoopFormat
    bbox: tuple[float, float, float, float]  # west, south, east, north in degrees
    width: int
    height: int  # derived from the bbox's aspect in Web Mercator
    frames: int  # stored frames ending at ``time``
    nowcast_min: int  # minutes of nowcast after the latest observation
    colormap: str
    delay_ms: int
    hold_ms: int
    time: FrameTime  # the last stored frame of the loop
    outlines: bool


@dataclass(frozen=True)
class LoopFrame:
    target: Target
    label: str  # "2026-11-27 21:40Z"
    forecast: str | None  # "Forecast +25 min", or None for an observation


@dataclass(frozen=True)
class LoopPlan:
    frames: tuple[LoopFrame, ...]
    durations: tuple[int, ...]  # ms per frame
    zoom: int
    etag: str
    cache_control: str
    headers: dict[str, str]  # ETag, Cache-Control, X-Frame-Time, X-Loop-Frames, X-Nowcast-From


# -- parameters ---------------------------------------------------------------


def loop_params(layer_id: str, fmt: str, query: dict[str, str], horizon_min: int = 120) -> LoopRequest:
    """Validate ``GET /loops/{layer}.{fmt}?...``: every failure is a BadRequest (unknown layer: NotFound).

    ``horizon_min`` is the server's ``nowcast_horizon_min`` (the ``nowcast`` maximum).
    """
    layer = layer_param(layer_id)
    if fmt not in MEDIA_TYPES:
        raise BadRequest("a loop is /loops/{layer}.webp, .gif or .png (APNG)")
    bbox = bbox_param(query.get("bbox"))
    width = _int_param(query, "width", DEFAULT_WIDTH, MIN_SIDE, MAX_SIDE, "px")
    height = derived_height(bbox, width)
    if height > MAX_SIDE:
        raise BadRequest(
            f"the bbox is {height} px tall at width={width}; the limit is {MAX_SIDE} px: "
            "ask for a smaller width or a wider bbox"
        )
    if height < MIN_SIDE:
        raise BadRequest(
            f"the bbox is only {height} px tall at width={width}; the minimum is {MIN_SIDE} px: "
            "ask for a larger width or a taller bbox"
        )
    frames = _int_param(query, "frames", DEFAULT_FRAMES, 1, MAX_FRAMES, "frames")
    if layer.nowcast:
        horizon = max(0, horizon_min)
        nowcast_min = _int_param(query, "nowcast", min(DEFAULT_NOWCAST_MIN, horizon), 0, horizon, "minutes")
    elif query.get("nowcast", "0") != "0":
        raise BadRequest(f"layer {layer.id!r} has no nowcast frames: leave out nowcast or set nowcast=0")
    else:
        nowcast_min = 0
    delay = _int_param(query, "delay", DEFAULT_DELAY_MS, MIN_DELAY_MS, MAX_DELAY_MS, "ms")
    hold = _int_param(query, "hold", DEFAULT_HOLD_MS, 0, MAX_HOLD_MS, "ms")
    outlines_text = query.get("outlines", "0")
    if outlines_text not in ("0", "1"):
        raise BadRequest("outlines must be 0 or 1")
    nowcast_frames = nowcast_min // layer.cadence_minutes
    total = width * height * (frames + nowcast_frames)
    if total > MAX_TOTAL_PIXELS:
        raise BadRequest(
            f"the loop would be {width}x{height} px x {frames + nowcast_frames} frames = {total / 1e6:.1f} megapixels; "
            f"the limit is {MAX_TOTAL_PIXELS / 1e6:g} megapixels: lower width, frames or nowcast"
        )
    return LoopRequest(
        layer=layer,
        format=fmt,  # type: ignore[arg-type]
        bbox=bbox,
        width=width,
        height=height,
        frames=frames,
        nowcast_min=nowcast_min,
        colormap=colormap_name_param(query.get("colormap"), layer),
        delay_ms=delay,
        hold_ms=hold,
        time=time_param(query.get("time")),
        outlines=outlines_text == "1",
    )


def bbox_param(text: str | None) -> tuple[float, float, float, float]:
    usage = "bbox=west,south,east,north in degrees, such as bbox=-105,30,-85,45"
    if text is None:
        raise BadRequest(f"bbox is required: {usage}")
    parts = text.split(",")
    if len(parts) != 4:
        raise BadRequest(f"bbox must be four numbers: {usage}")
    try:
        west, south, east, north = (float(part) for part in parts)
    except ValueError:
        raise BadRequest(f"bbox must be four numbers: {usage}") from None
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise BadRequest(f"bbox must be finite numbers: {usage}")
    for name, value, limit in (("west", west, 180.0), ("east", east, 180.0), ("south", south, MAX_LAT), ("north", north, MAX_LAT)):
        if abs(value) > limit:
            raise BadRequest(f"bbox {name}={value:g} is out of range -{limit:g}..{limit:g}")
    if west > east:
        raise BadRequest("bbox crosses the antimeridian (west > east), which loops do not support: ask for each side separately")
    if west == east or south >= north:
        raise BadRequest(f"bbox is empty: west must be less than east and south less than north ({usage})")
    return west, south, east, north


def derived_height(bbox: tuple[float, float, float, float], width: int) -> int:
    """The loop's height: the bbox's aspect in Web Mercator, at ``width`` pixels."""
    x0, y0 = mercantile.xy(bbox[0], bbox[1])
    x1, y1 = mercantile.xy(bbox[2], bbox[3])
    return max(1, round(width * (y1 - y0) / (x1 - x0)))


def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int, unit: str) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 8) or not low <= int(text) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high} ({unit})")
    return int(text)


# -- planning -----------------------------------------------------------------


def plan_loop(service: TileService, request: LoopRequest) -> LoopPlan:
    """The loop's frames, durations, zoom and validators, without rendering anything."""
    layer = request.layer
    service.check_colormap(layer.id, request.colormap)
    catalog = service.catalog(layer.id)
    stored = catalog.visible_frames()
    if not stored:
        raise NotFound(f"layer {layer.id!r} has no frames yet")
    if request.time == "latest":
        end = len(stored) - 1
    else:
        end = next((i for i, f in enumerate(stored) if f.time == request.time), -1)
        if end < 0:
            raise NotFound(f"layer {layer.id!r} has no frame at {format_utc(request.time)}; a loop ends at a stored frame")
    chosen = stored[max(0, end - request.frames + 1) : end + 1]
    frames = [LoopFrame(Target(f, f.time), stamp(f.time), _model_lead(f.time, f.run)) for f in chosen]
    last_observed = len(frames) - 1
    nowcasts: list[Target] = []
    if layer.nowcast and request.nowcast_min > 0 and chosen[-1] == catalog.frames[-1]:
        nowcasts = [n for n in service.nowcasts(layer, catalog) if n.lead_s <= request.nowcast_min * 60]
        frames += [LoopFrame(n, stamp(n.time), f"Forecast +{_lead_text(n.lead_s)}") for n in nowcasts]
    durations = [request.delay_ms] * len(frames)
    durations[last_observed] += request.hold_ms

    identities = ";".join(
        f"{f.target.identity}@{format_utc(f.target.time)}@{format_utc(f.target.frame.run) if f.target.frame.run else ''}"
        for f in frames
    )
    key = (
        f"{RENDER_VERSION}|loop{LOOP_VERSION}|{service.definition_digest(layer.id, request.colormap)}|{layer.id}|{request.format}|{request.bbox}|{request.width}x{request.height}"
        f"|{request.colormap}|{durations}|{outline_source() if request.outlines else 0}|{identities}"
    )
    etag = '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'
    mutable = request.time == "latest" or bool(nowcasts) or layer.kind == "forecast"
    cache_control = f"public, max-age={service.settings.latest_max_age_s if mutable else PINNED_MAX_AGE_S}"
    headers = {
        "ETag": etag,
        "Cache-Control": cache_control,
        "X-Frame-Time": format_utc(chosen[-1].time),
        "X-Loop-Frames": str(len(frames)),
    }
    if nowcasts:
        headers["X-Nowcast-From"] = format_utc(nowcasts[0].frame.time)
    zoom = loop_zoom(request, max(f.native_zoom for f in chosen))
    return LoopPlan(tuple(frames), tuple(durations), zoom, etag, cache_control, headers)


def megapixels(request: LoopRequest, plan: LoopPlan) -> float:
    """What a loop costs to render: its pixels over all frames, in millions."""
    return request.width * request.height * len(plan.frames) / 1e6


def stamp(time: datetime) -> str:
    return f"{time:%Y-%m-%d %H:%M}Z"


def _lead_text(lead_s: float, hours: bool = False) -> str:
    minutes = round(lead_s / 60)
    if hours and minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def _model_lead(time: datetime, run: datetime | None) -> str | None:
    """A model frame's marker: its lead from the run, and the run."""
    if run is None:
        return None
    return f"Forecast +{_lead_text((time - run).total_seconds(), hours=True)} (run {run:%d %H}Z)"


def loop_zoom(request: LoopRequest, native_zoom: int) -> int:
    """The zoom whose pixel is nearest the loop's (in log scale), at most the frames' native zoom."""
    x0, _ = mercantile.xy(request.bbox[0], request.bbox[1])
    x1, _ = mercantile.xy(request.bbox[2], request.bbox[3])
    pixel = (x1 - x0) / request.width
    zoom = round(math.log2(2 * ORIGIN / (TILE_SIZE * pixel)))
    return int(min(max(zoom, 0), 22, max(native_zoom, 0)))


# -- rendering ----------------------------------------------------------------


def render_loop(service: TileService, request: LoopRequest, plan: LoopPlan | None = None, cache: bool = True) -> tuple[bytes, str, str]:
    """The encoded loop, its media type and ETag; kept in the service's tile LRU by ETag."""
    plan = plan or plan_loop(service, request)
    media_type = MEDIA_TYPES[request.format]
    if cache:
        body = service.cached(plan.etag)
        if body is not None:
            return body, media_type, plan.etag
    frames = render_frames(service, request, plan)
    try:
        body = encode_loop(frames, plan.durations, request.format)
    finally:
        frames.close()  # stops the frame workers if the encoder gave up early
    # A loop may use at most 1/8 of the cache, so one loop cannot flush the tiles.
    if cache and len(body) <= service.tiles.maxsize // 8:
        service.keep_tile(plan.etag, body)
    return body, media_type, plan.etag


def render_frames(service: TileService, request: LoopRequest, plan: LoopPlan) -> Iterator[Image.Image]:
    """Every frame as an RGB image, decorated (stamp, marker, timeline, outlines), in order.

    Frames are drawn as the encoder asks for them, at most ``FRAME_WORKERS`` ahead,
    so a loop's memory grows with its frame size, not its frame count.
    """
    grid = _Grid.of(request, plan.zoom)
    overlay = graticule(request) if request.outlines else None
    # GIF and APNG keep text unantialiased: the frames stay within one 256-colour palette.
    antialias = request.format == "webp"

    def frame_image(index: int) -> Image.Image:
        bodies = [_tile_png(service, request, plan.frames[index].target, tile) for tile in grid.tiles]
        image = Image.new("RGBA", (request.width, request.height), BACKGROUND + (255,))
        image.alpha_composite(grid.sample(bodies))
        if overlay is not None:
            image.alpha_composite(overlay)
        return decorate(image, plan, index, antialias)

    # One task per frame: tile reads, PNG decoding and compositing release the GIL.
    with ThreadPoolExecutor(max_workers=FRAME_WORKERS) as pool:
        indices = iter(range(len(plan.frames)))
        drawing = deque(pool.submit(frame_image, index) for index in itertools.islice(indices, FRAME_WORKERS))
        try:
            while drawing:
                image = drawing.popleft().result()
                following = next(indices, None)
                if following is not None:
                    drawing.append(pool.submit(frame_image, following))
                yield image
        finally:
            for future in drawing:
                future.cancel()


def _tile_png(service: TileService, request: LoopRequest, target: Target, tile: mercantile.Tile) -> bytes:
    tile_request = TileRequest(
        layer=request.layer, time=target.time, run=target.frame.run, tile=tile,
        size=TILE_SIZE, format="png", colormap=request.colormap,
    )
    # The same cache entries a viewer's tile requests fill.
    return service.render_tile(tile_request, target, service.tile_etag(tile_request, target))


@dataclass(frozen=True)
class _Grid:
    """The tiles of ``zoom`` that cover the loop, and the loop's box within their mosaic."""

    zoom: int
    tiles: tuple[mercantile.Tile, ...]  # row by row
    columns: int  # tiles across the mosaic
    rows: int
    box: tuple[float, float, float, float]  # the bbox in mosaic pixels: left, top, right, bottom
    size: tuple[int, int]  # output width, height

    @classmethod
    def of(cls, request: LoopRequest, zoom: int) -> _Grid:
        west, south, east, north = request.bbox
        x0, y0 = mercantile.xy(west, south)
        x1, y1 = mercantile.xy(east, north)
        world = TILE_SIZE * 2**zoom
        source = 2 * ORIGIN / world  # metres per mosaic pixel
        left, right = (x0 + ORIGIN) / source, (x1 + ORIGIN) / source
        top, bottom = (ORIGIN - y1) / source, (ORIGIN - y0) / source
        # The tiles under the output's pixel centres (nearest: each takes the pixel under its centre).
        half_x, half_y = (right - left) / request.width / 2, (bottom - top) / request.height / 2
        tx0, tx1 = int(left + half_x) // TILE_SIZE, min(int(right - half_x), world - 1) // TILE_SIZE
        ty0, ty1 = int(top + half_y) // TILE_SIZE, min(int(bottom - half_y), world - 1) // TILE_SIZE
        tiles = tuple(mercantile.Tile(x, y, zoom) for y in range(ty0, ty1 + 1) for x in range(tx0, tx1 + 1))
        ox, oy = tx0 * TILE_SIZE, ty0 * TILE_SIZE
        box = (left - ox, top - oy, right - ox, bottom - oy)
        return cls(zoom, tiles, tx1 - tx0 + 1, ty1 - ty0 + 1, box, (request.width, request.height))

    def sample(self, bodies: list[bytes]) -> Image.Image:
        """The tiles' colours on the loop's pixels (RGBA), nearest-neighbour."""
        mosaic = Image.new("RGBA", (self.columns * TILE_SIZE, self.rows * TILE_SIZE), (0, 0, 0, 0))
        empty = transparent_png(TILE_SIZE)
        for index, body in enumerate(bodies):
            if body == empty:
                continue
            row, col = divmod(index, self.columns)
            with Image.open(io.BytesIO(body)) as tile:
                mosaic.paste(tile.convert("RGBA"), (col * TILE_SIZE, row * TILE_SIZE))
        # Nearest keeps every colour a colormap class: no blends of "no data" into data.
        return mosaic.resize(self.size, Image.Resampling.NEAREST, box=self.box)


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the bitmap font only
        return ImageFont.load_default()


def font_size(width: int) -> int:
    return max(11, min(20, round(width / 50)))


def stamp_text(frame: LoopFrame) -> str:
    return frame.label + (f"  {frame.forecast}" if frame.forecast else "")


def stamp_box(image_width: int, frame: LoopFrame) -> tuple[int, int, int, int]:
    """Where the time stamp's box goes: (left, top, right, bottom), the frame's top-left corner."""
    size = font_size(image_width)
    _, _, right, bottom = font(size).getbbox(stamp_text(frame))
    pad = max(4, size // 3)
    return 0, 0, min(image_width, int(right) + 2 * pad), int(bottom) + 2 * pad


def decorate(image: Image.Image, plan: LoopPlan, index: int, antialias: bool = True) -> Image.Image:
    """The RGB frame from ``image`` (RGBA, drawn on in place): stamp the frame's time (and forecast marker) and draw the timeline and forecast border."""
    frame = plan.frames[index]
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
    count = len(plan.frames)
    for k, other in enumerate(plan.frames):
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


def load_outlines(path: Path | None = None) -> Outlines | None:
    """The outline file's lines, or None when it is missing or unreadable (then: graticule only)."""
    path = path or OUTLINES_PATH
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


def outline_source() -> str:
    """What ``outlines=1`` draws, for ETags: the outline file's digest, or the graticule alone."""
    outlines = load_outlines()
    return f"outlines:{outlines.digest}" if outlines else "graticule"


def draw_outlines(layer: Image.Image, request: LoopRequest, outlines: Outlines) -> None:
    """Coastlines and borders inside the bbox, onto the RGBA ``layer``."""
    west, south, east, north = request.bbox
    x0, y0 = mercantile.xy(west, south)
    x1, y1 = mercantile.xy(east, north)
    sx, sy = request.width / (x1 - x0), request.height / (y1 - y0)
    draw = ImageDraw.Draw(layer)
    for name, colour in OUTLINE_STYLE.items():
        bounds = outlines.bounds[name]
        if not len(bounds):
            continue
        near = (bounds[:, 0] <= east) & (bounds[:, 2] >= west) & (bounds[:, 1] <= north) & (bounds[:, 3] >= south)
        for index in np.flatnonzero(near):
            lon, lat = outlines.lines[name][index].T
            lat = np.clip(lat, -MAX_LAT, MAX_LAT)
            x = (np.radians(lon) * 6378137.0 - x0) * sx
            y = (y1 - 6378137.0 * np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))) * sy
            draw.line(list(zip(x.tolist(), y.tolist())), fill=colour, width=1)


def graticule(request: LoopRequest) -> Image.Image:
    """Coastlines and borders (when the outline file is there), lat/lon lines and labels: an RGBA overlay."""
    west, south, east, north = request.bbox
    width, height = request.width, request.height
    x0, y0 = mercantile.xy(west, south)
    x1, y1 = mercantile.xy(east, north)
    step = next((s for s in GRATICULE_STEPS if (east - west) / s <= 8 and (north - south) / s <= 8), 90.0)
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    lines = ImageDraw.Draw(layer)
    outlines = load_outlines()
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
        draw_outlines(layer, request, outlines)
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


def loop_summary(plan: LoopPlan) -> list[dict[str, Any]]:
    """The frames of a plan as JSON-able dicts (for logs, a future ``/api`` listing, tests)."""
    return [
        {
            "time": format_utc(f.target.time),
            "forecast": f.forecast,
            "nowcast_from": format_utc(f.target.frame.time) if f.target.is_nowcast else None,
            "duration_ms": d,
        }
        for f, d in zip(plan.frames, plan.durations)
    ]

