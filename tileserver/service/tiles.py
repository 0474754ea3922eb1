"""Tiles: a URL's frame resolved, validators computed, pixels read, coloured and cached."""

from __future__ import annotations

import hashlib
import threading
from functools import lru_cache

import numpy as np
from cachetools import LRUCache

import colormaps
from renderers.colorize import ColorTable, ColormapMismatchError, check_compatible, color_table
from renderers.png import render_npy, render_png, transparent_png
from tileserver.core import grid
from tileserver.core.layers import LAYERS
from tileserver.core.reader import read_tile
from tileserver.core.settings import Settings
from tileserver.service import blend
from tileserver.service.catalogs import Catalogs
from tileserver.service.errors import BadRequest
from tileserver.service.metrics import Metrics
from tileserver.service.nowcast import Nowcasts
from tileserver.service.params import TileRequest
from tileserver.service.targets import Target
from tileserver.store import Catalog

# Part of every ETag: bump when rendering changes so clients refetch.
RENDER_VERSION = "4"
MEDIA_TYPES = {"png": "image/png", "npy": "application/x-npy"}
# What a tile cache entry costs besides its body's bytes: the ETag key, the
# body's object header and cachetools' bookkeeping (dicts and a linked-list
# node), about 300 B (tests/tileserver/service/test_tile_cache.py). Most entries are the
# shared 116-byte empty tile: counting bodies alone, a full cache held 3.6x its
# setting (benchmarks/README.md).
TILE_ENTRY_OVERHEAD = 320


class Tiles:
    def __init__(self, catalogs: Catalogs, nowcasts: Nowcasts, settings: Settings, metrics: Metrics) -> None:
        self.catalogs = catalogs
        self.nowcasts = nowcasts
        self.settings = settings
        self.metrics = metrics
        # Keyed by ETag: it already digests everything the bytes depend on.
        self.cache: LRUCache[str, bytes] = LRUCache(maxsize=settings.cache_mb * 2**20, getsizeof=_entry_size)
        self._cache_lock = threading.Lock()

    def tile_etag(self, request: TileRequest, target: Target) -> str:
        t = request.tile
        definitions = definition_digest(request.layer.id, request.colormap)
        key = f"{RENDER_VERSION}|{definitions}|{target.identity}|{t.z}/{t.x}/{t.y}|{request.size}|{request.format}|{request.colormap}"
        return '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'

    def cache_control(self, request: TileRequest, target: Target) -> str:
        # A time-stamped observation never changes; "latest", a nowcast (redone
        # from each new observation), and a forecast valid time without run (a
        # newer run may take it over) do.
        mutable = (
            request.time == "latest" or target.is_nowcast
            or (request.layer.kind == "forecast" and request.run is None)
        )
        if mutable:
            return f"public, max-age={self.settings.latest_max_age_s}"
        return f"public, max-age={self.settings.frame_max_age_s}, immutable"

    def prepare_tile(self, request: TileRequest, catalog: Catalog | None = None) -> tuple[Target, str, str]:
        """Resolve the frame and compute validators without rendering (for 304s).

        With a ``catalog`` in hand this does no I/O, so the server runs it on its event loop.
        """
        if request.format == "png":
            check_colormap(request.layer.id, request.colormap)
        target = self.catalogs.target(request.layer, request.time, request.run, catalog)
        return target, self.tile_etag(request, target), self.cache_control(request, target)

    def cached(self, key: str) -> bytes | None:
        """Bytes kept under ``key`` (a tile's or a loop's ETag), or None."""
        with self._cache_lock:  # an LRU lookup reorders the cache: not thread-safe alone
            return self.cache.get(key)

    def cached_tile(self, etag: str) -> bytes | None:
        """A tile from the LRU, counted as a hit; None (and nothing counted) if absent."""
        body = self.cached(etag)
        if body is not None:
            self.metrics.count_tile("hit", len(body))
        return body

    def keep(self, key: str, body: bytes) -> None:
        if _entry_size(body) <= self.cache.maxsize:
            with self._cache_lock:
                self.cache[key] = body

    def render_tile(self, request: TileRequest, target: Target, etag: str) -> bytes:
        """The tile's bytes, from the cache or rendered and kept; ``etag`` is its cache key."""
        body = self.cached_tile(etag)
        if body is None:
            body = self._render(request, target)
            self.keep(etag, body)
            self.metrics.count_tile("miss", len(body))
        return body

    def _render(self, request: TileRequest, target: Target) -> bytes:
        frame = target.frame
        if target.is_nowcast:
            field = self.nowcasts.motion_field(target)
            if request.format == "png" and not intersects(request.tile, frame.bounds, margin_m=field.reach(target.lead_s)):
                return transparent_png(request.size)
            codes = self.nowcasts.tile_codes(target, request.tile, request.size)
        elif target.under:
            codes = self._blend_codes(request, target)
            if codes is None:
                return transparent_png(request.size)
        else:
            if request.format == "png" and not intersects(request.tile, frame.bounds):
                return transparent_png(request.size)
            codes = self.catalogs.read(frame, lambda dataset: read_tile(dataset, request.tile, request.size))
        if request.format == "npy":
            return render_npy(request.layer.encoding.decode(codes))
        return render_png(codes, layer_colors(request.layer.id, request.colormap))

    def _blend_codes(self, request: TileRequest, target: Target) -> np.ndarray | None:
        """A blend's tile: each source's codes where the ones before it have none; None if no source reaches it."""
        nodata = request.layer.encoding.nodata
        codes = None
        for frame in (target.frame, *target.under):
            if not intersects(request.tile, frame.bounds):
                continue
            more = self.catalogs.read(frame, lambda dataset: read_tile(dataset, request.tile, request.size))
            codes = more if codes is None else blend.fill(codes, nodata, more)
            if not (codes == nodata).any():
                break
        if codes is None and request.format == "npy":
            codes = np.full((request.size, request.size), nodata, dtype=request.layer.encoding.dtype)
        return codes


def check_colormap(layer_id: str, colormap: str) -> None:
    """BadRequest unless the colormap exists and can draw the layer."""
    try:
        check_compatible(LAYERS[layer_id].units, colormaps.get(colormap), f"layer {layer_id!r}")
    except colormaps.UnknownColormapError:
        raise BadRequest(f"unknown colormap {colormap!r}; see /api/colormaps") from None
    except ColormapMismatchError as exc:
        raise BadRequest(str(exc)) from None


@lru_cache(maxsize=256)
def layer_colors(layer_id: str, colormap: str) -> ColorTable:
    """The colour of every code of the layer in the colormap, built once per pair."""
    layer = LAYERS[layer_id]
    check_colormap(layer_id, colormap)
    return color_table(layer.encoding.decode_table(), layer.encoding.table_offset, layer.value_range, colormaps.get(colormap))


@lru_cache(maxsize=512)
def definition_digest(layer_id: str, colormap: str) -> str:
    """What a tile's pixels depend on besides its frame, as a short digest.

    Both definitions are frozen dataclasses whose repr lists every field, so
    editing a colormap's JSON or a layer's encoding changes the digest, and
    with it every ETag: caches holding week-long ``immutable`` tiles refetch.
    Computed once per pair (colormaps load once per process).
    """
    text = repr(LAYERS[layer_id]) + (repr(colormaps.get(colormap)) if colormap else "")
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _entry_size(body: bytes) -> int:
    return len(body) + TILE_ENTRY_OVERHEAD


def intersects(tile: grid.Tile, bounds: tuple[float, float, float, float], margin_m: float = 0.0) -> bool:
    """Does the tile, grown by ``margin_m`` mercator metres, touch the lon/lat bounds?

    Bounds with west > east cross the antimeridian (RFC 7946): they are two boxes,
    one each side of 180 deg.
    """
    west_lon, south_lat, east_lon, north_lat = bounds
    if west_lon > east_lon:
        return intersects(tile, (west_lon, south_lat, 180.0, north_lat), margin_m) or intersects(
            tile, (-180.0, south_lat, east_lon, north_lat), margin_m)
    left, bottom, right, top = grid.xy_bounds(tile)
    west, south = grid.xy(west_lon, south_lat)
    east, north = grid.xy(east_lon, north_lat)
    return left - margin_m < east and right + margin_m > west and bottom - margin_m < north and top + margin_m > south
