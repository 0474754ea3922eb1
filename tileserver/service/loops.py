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
  (``Tiles.render_tile``), so nowcasts, colormaps and the tile cache all come
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
import itertools
import math
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image

from renderers.loops import BACKGROUND, decorate, encode_loop, graticule, load_outlines, mosaic, outline_source
from tileserver.core import grid as mercator
from tileserver.core.layers import Layer
from tileserver.core.timeutil import format_utc
from tileserver.service import targets
from tileserver.service.errors import BadRequest, NotFound
from tileserver.service.params import FrameTime, TileRequest, colormap_name_param, layer_param, time_param
from tileserver.service.targets import Target
from tileserver.service.tiles import RENDER_VERSION, check_colormap, definition_digest

if TYPE_CHECKING:
    from tileserver.service import TileService

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
# A loop pinned to a time-stamped frame changes only when a frame is backfilled
# into its window or pruned out of it.
PINNED_MAX_AGE_S = 3600
# Frames drawn concurrently for one loop (GDAL reads, PNG decoding and compositing release the GIL).
FRAME_WORKERS = max(2, min(4, os.cpu_count() or 2))
TILE_SIZE = mercator.TILE_SIZE
# Coastlines, country and US state borders, as the viewer draws them without a
# basemap (``wxtiles-outlines/1``, built by frontend/tools/build-outlines.mjs).
# Without the file, ``outlines=1`` draws the graticule alone.
OUTLINES_PATH = Path(__file__).resolve().parent.parent / "viewer" / "outlines.json"  # an installed wheel
if not OUTLINES_PATH.is_file():
    OUTLINES_PATH = OUTLINES_PATH.parents[3] / "frontend" / "outlines.json"  # a checkout

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
    for name, value, limit in (("west", west, 180.0), ("east", east, 180.0), ("south", south, mercator.MAX_LAT), ("north", north, mercator.MAX_LAT)):
        if abs(value) > limit:
            raise BadRequest(f"bbox {name}={value:g} is out of range -{limit:g}..{limit:g}")
    if west > east:
        raise BadRequest("bbox crosses the antimeridian (west > east), which loops do not support: ask for each side separately")
    if west == east or south >= north:
        raise BadRequest(f"bbox is empty: west must be less than east and south less than north ({usage})")
    return west, south, east, north


def derived_height(bbox: tuple[float, float, float, float], width: int) -> int:
    """The loop's height: the bbox's aspect in Web Mercator, at ``width`` pixels."""
    x0, y0 = mercator.xy(bbox[0], bbox[1])
    x1, y1 = mercator.xy(bbox[2], bbox[3])
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
    check_colormap(layer.id, request.colormap)
    catalog = service.catalogs.catalog(layer.id)
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
        nowcasts = [n for n in targets.nowcasts(layer, catalog, service.settings.nowcast_horizon_min) if n.lead_s <= request.nowcast_min * 60]
        frames += [LoopFrame(n, stamp(n.time), f"Forecast +{_lead_text(n.lead_s)}") for n in nowcasts]
    durations = [request.delay_ms] * len(frames)
    durations[last_observed] += request.hold_ms

    identities = ";".join(
        f"{f.target.identity}@{format_utc(f.target.time)}@{format_utc(f.target.frame.run) if f.target.frame.run else ''}"
        for f in frames
    )
    key = (
        f"{RENDER_VERSION}|loop{LOOP_VERSION}|{definition_digest(layer.id, request.colormap)}|{layer.id}|{request.format}|{request.bbox}|{request.width}x{request.height}"
        f"|{request.colormap}|{durations}|{outline_source(OUTLINES_PATH) if request.outlines else 0}|{identities}"
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
    x0, _ = mercator.xy(request.bbox[0], request.bbox[1])
    x1, _ = mercator.xy(request.bbox[2], request.bbox[3])
    pixel = (x1 - x0) / request.width
    zoom = round(math.log2(mercator.ZOOM0_RESOLUTION / pixel))
    return int(min(max(zoom, 0), 22, max(native_zoom, 0)))


# -- rendering ----------------------------------------------------------------


def render_loop(service: TileService, request: LoopRequest, plan: LoopPlan | None = None, cache: bool = True) -> tuple[bytes, str, str]:
    """The encoded loop, its media type and ETag; kept in the service's tile LRU by ETag."""
    plan = plan or plan_loop(service, request)
    media_type = MEDIA_TYPES[request.format]
    if cache:
        body = service.tiles.cached(plan.etag)
        if body is not None:
            return body, media_type, plan.etag
    frames = render_frames(service, request, plan)
    try:
        body = encode_loop(frames, plan.durations, request.format)
    finally:
        frames.close()  # stops the frame workers if the encoder gave up early
    # A loop may use at most 1/8 of the cache, so one loop cannot flush the tiles.
    if cache and len(body) <= service.tiles.cache.maxsize // 8:
        service.tiles.keep(plan.etag, body)
    return body, media_type, plan.etag


def render_frames(service: TileService, request: LoopRequest, plan: LoopPlan) -> Iterator[Image.Image]:
    """Every frame as an RGB image, decorated (stamp, marker, timeline, outlines), in order.

    Frames are drawn as the encoder asks for them, at most ``FRAME_WORKERS`` ahead,
    so a loop's memory grows with its frame size, not its frame count.
    """
    grid = _Grid.of(request, plan.zoom)
    overlay = graticule(request.bbox, request.width, request.height, load_outlines(OUTLINES_PATH)) if request.outlines else None
    # GIF and APNG keep text unantialiased: the frames stay within one 256-colour palette.
    antialias = request.format == "webp"

    def frame_image(index: int) -> Image.Image:
        bodies = [_tile_png(service, request, plan.frames[index].target, tile) for tile in grid.tiles]
        image = Image.new("RGBA", (request.width, request.height), BACKGROUND + (255,))
        image.alpha_composite(mosaic(bodies, grid.columns, grid.box, grid.size))
        if overlay is not None:
            image.alpha_composite(overlay)
        return decorate(image, plan.frames, index, antialias)

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


def _tile_png(service: TileService, request: LoopRequest, target: Target, tile: mercator.Tile) -> bytes:
    tile_request = TileRequest(
        layer=request.layer, time=target.time, run=target.frame.run, tile=tile,
        size=TILE_SIZE, format="png", colormap=request.colormap,
    )
    # The same cache entries a viewer's tile requests fill.
    return service.tiles.render_tile(tile_request, target, service.tiles.tile_etag(tile_request, target))


@dataclass(frozen=True)
class _Grid:
    """The tiles of ``zoom`` that cover the loop, and the loop's box within their mosaic."""

    tiles: tuple[mercator.Tile, ...]  # row by row
    columns: int  # tiles across the mosaic
    box: tuple[float, float, float, float]  # the bbox in mosaic pixels: left, top, right, bottom
    size: tuple[int, int]  # output width, height

    @classmethod
    def of(cls, request: LoopRequest, zoom: int) -> _Grid:
        west, south, east, north = request.bbox
        x0, y0 = mercator.xy(west, south)
        x1, y1 = mercator.xy(east, north)
        world = TILE_SIZE * 2**zoom
        source = mercator.resolution(zoom)  # metres per mosaic pixel
        origin = mercator.ORIGIN
        left, right = (x0 + origin) / source, (x1 + origin) / source
        top, bottom = (origin - y1) / source, (origin - y0) / source
        # The tiles under the output's pixel centres (nearest: each takes the pixel under its centre).
        half_x, half_y = (right - left) / request.width / 2, (bottom - top) / request.height / 2
        tx0, tx1 = int(left + half_x) // TILE_SIZE, min(int(right - half_x), world - 1) // TILE_SIZE
        ty0, ty1 = int(top + half_y) // TILE_SIZE, min(int(bottom - half_y), world - 1) // TILE_SIZE
        tiles = tuple(mercator.Tile(x, y, zoom) for y in range(ty0, ty1 + 1) for x in range(tx0, tx1 + 1))
        ox, oy = tx0 * TILE_SIZE, ty0 * TILE_SIZE
        box = (left - ox, top - oy, right - ox, bottom - oy)
        return cls(tiles, tx1 - tx0 + 1, box, (request.width, request.height))


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

