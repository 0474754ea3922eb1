"""What the tile server does, as plain functions over a store: no HTTP here.

The Starlette app (``tileserver.http.app``) only parses requests, calls these and
turns results and :class:`~tileserver.service.errors.ApiError` into responses.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import time as _time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import mercantile
import numpy as np
from cachetools import LRUCache

import colormaps
from renderers.colorize import ColormapMismatchError, check_compatible, color_table
from renderers.nowcast.advection import DepartureCache, Departures, MotionField
from renderers.nowcast.tiles import load_motion, nowcast_point, nowcast_tile
from renderers.png import render_npy, render_png, transparent_png
from tileserver.core import gdalcache
from tileserver.service import blend
from tileserver.service.errors import ApiError, BadGateway, BadRequest, NotFound, Unavailable
from tileserver.service.health import StoreHealth
from tileserver.core.layers import LAYERS, Layer
from tileserver.service.metrics import CatalogCollector, Metrics, VerificationCollector
from tileserver.service.params import FrameTime, TileRequest
from tileserver.core.reader import DatasetPool, read_point, read_tile
from tileserver.store.series import SeriesGrid, decode_entry, index_range, pack_index_range, value_in_chunk, values_in_pack_chunk
from tileserver.core.settings import Settings
from tileserver.store.storage import KeyNotFound, StorageError
from tileserver.store import Catalog, CatalogError, Frame, Pack, Store, catalog_key
from tileserver.core.timeutil import format_utc
from tileserver.core.verification import Record, summary

log = logging.getLogger(__name__)

# Part of every ETag: bump when rendering changes so clients refetch.
RENDER_VERSION = "2"
# Nowcast departure lattices kept (DepartureCache): 1.35 MB per lead over the
# MRMS domain, so a 2-hour horizon at 5 minutes (24 leads) takes 32 MB.
DEPARTURES_CACHE_MB = 48
# How GDAL's curl layer words a store that is down or too slow.
NETWORK_FAILURES = ("timed out", "Couldn't connect", "Connection refused", "HTTP error code: 0", "HTTP error code: 5")
# While the store is down, requests and probes check it at most this often.
STORE_CHECK_INTERVAL_S = 1.0
# The version token of a catalog that does not exist (a layer never ingested).
ABSENT = "absent"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# 48 h of 2-minute MRMS frames, with room to spare.
MAX_SERIES_FRAMES = 2000
_SERIES_DTYPES = {layer.id: {"uint8": "u1", "uint16": "u2", "int16": "i2"}[layer.encoding.dtype] for layer in LAYERS.values()}
# What decoding a truncated or garbled sidecar, pack or catalog raises.
CORRUPT_BYTES = (struct.error, zlib.error, ValueError, IndexError, KeyError, TypeError)
MEDIA_TYPES = {"png": "image/png", "npy": "application/x-npy"}
# Past its TTL a catalog keeps answering, for at most this long, while one
# background read refreshes it: requests never queue behind a catalog read.
CATALOG_STALE_GRACE_S = 30.0
# What a tile cache entry costs besides its body's bytes: the ETag key, the
# body's object header and cachetools' bookkeeping (dicts and a linked-list
# node), about 300 B (tests/tileserver/test_tile_cache.py). Most entries are the
# shared 116-byte empty tile: counting bodies alone, a full cache held 3.6x its
# setting (benchmarks/README.md).
TILE_ENTRY_OVERHEAD = 320


@dataclass(frozen=True)
class Target:
    """The frame a URL names: stored, or a nowcast ``lead_s`` past ``frame`` along ``motion``."""

    frame: Frame
    time: datetime
    lead_s: float = 0.0
    motion: str | None = None
    # A blend's less preferred frames at this time: they fill ``frame``'s no-data cells.
    under: tuple[Frame, ...] = ()

    @property
    def is_nowcast(self) -> bool:
        return self.lead_s > 0

    @property
    def identity(self) -> str:
        """Everything the rendered bytes depend on, for cache keys and ETags."""
        base = "|".join(f"{frame.layer}|{frame.digest}" for frame in (self.frame, *self.under))
        return f"{base}|nowcast|{self.motion}|{self.lead_s:g}" if self.is_nowcast else base


class TileService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.metrics = Metrics()
        self.metrics.registry.register(CatalogCollector(self._cached_catalogs))
        self.metrics.registry.register(VerificationCollector(self._cached_verification))
        # Hot frames keep a handle per render thread; all frames together keep
        # two per frame on average (each idle handle holds about 0.35 MB).
        self.datasets = DatasetPool(max_paths=settings.open_datasets, idle_per_path=settings.threads,
                                    max_idle=2 * settings.open_datasets)
        # Keyed by ETag: it already digests everything the bytes depend on.
        self.tiles: LRUCache[str, bytes] = LRUCache(maxsize=settings.cache_mb * 2**20, getsizeof=_entry_size)
        self._tiles_lock = threading.Lock()
        self._catalogs: dict[str, tuple[float, Catalog]] = {}
        # The store's version token of each catalog last read (see Storage.read_if_changed).
        self._catalog_versions: dict[str, str] = {}
        self.health = StoreHealth(on_change=self.metrics.store_up.set)
        self._warm = False
        self._checking = False
        self._checked_at = -STORE_CHECK_INTERVAL_S
        self._catalog_lock = threading.Lock()
        self._verification: dict[str, tuple[float, Record | None]] = {}
        self._refreshing: set[str] = set()
        self._refresh_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="catalog")
        self._motion: LRUCache[str, MotionField] = LRUCache(maxsize=16)
        self._motion_lock = threading.Lock()
        # Each nowcast lead's trajectories, traced once per motion field and shared by all its tiles.
        self._departures = DepartureCache(max_bytes=DEPARTURES_CACHE_MB * 2**20)
        # Sidecar index entries and chunks: small, re-read by every series query nearby.
        self._series_cache: LRUCache[tuple[str, int, int], bytes] = LRUCache(maxsize=32 * 2**20, getsizeof=len)
        self._series_lock = threading.Lock()
        # Store reads release the GIL (pread, HTTP): many in flight cover S3 latency.
        self._series_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="series")

    # -- catalogs -----------------------------------------------------------

    def fresh_catalog(self, layer_id: str) -> Catalog | None:
        """The layer's catalog when it can be had without waiting on the store.

        Within its TTL, or up to ``CATALOG_STALE_GRACE_S`` past it (for as long
        as the store is down) while one background read refreshes it; None when
        it must be read now (always, with a TTL of 0 and the store up).
        """
        cached = self._catalogs.get(layer_id)
        if cached is None:
            return None
        age = _time.monotonic() - cached[0]
        if age < self.settings.catalog_ttl_s:
            return cached[1]
        if (0 < self.settings.catalog_ttl_s and age < self.settings.catalog_ttl_s + CATALOG_STALE_GRACE_S) or not self.health.up:
            self._refresh_in_background(layer_id)
            return cached[1]
        return None

    def catalog(self, layer_id: str) -> Catalog:
        """The layer's catalog, re-read from the store at most every ``catalog_ttl_s``.

        While the store is down the last catalog keeps serving, refreshed in the
        background so no request waits on a dead store; with none, 503.
        """
        if LAYERS[layer_id].blend:
            return Catalog(layer_id)  # a view: its frames are its sources' (see stacks)
        cached = self._catalogs.get(layer_id)
        if cached and (_time.monotonic() - cached[0] < self.settings.catalog_ttl_s or self.health.status == "down"):
            if self.health.status == "down":
                self._refresh_in_background(layer_id)
            return cached[1]
        return self._read_catalog(layer_id)

    def stacks(self, layer: Layer) -> list[blend.Stack]:
        """A blend layer's frames: per valid time, each source's newest run, most preferred first."""
        return blend.stacks([self.catalog(source) for source in layer.blend])

    def _refresh_in_background(self, layer_id: str) -> None:
        with self._catalog_lock:
            if layer_id in self._refreshing:
                return
            self._refreshing.add(layer_id)

        def refresh() -> None:
            try:
                self._read_catalog(layer_id)
            except ApiError:
                pass  # already logged and counted; the next request tries again
            finally:
                with self._catalog_lock:
                    self._refreshing.discard(layer_id)

        try:
            self._refresh_pool.submit(refresh)
        except RuntimeError:  # shutting down
            with self._catalog_lock:
                self._refreshing.discard(layer_id)

    def _read_catalog(self, layer_id: str) -> Catalog:
        """Ask the store whether the catalog changed; read and parse it only if it did."""
        now = _time.monotonic()
        cached = self._catalogs.get(layer_id)
        key = catalog_key(layer_id)
        seen = version = self._catalog_versions.get(layer_id)
        try:
            try:
                changed = self.store.storage.read_if_changed(key, seen)
            except KeyNotFound:
                changed = (b"", ABSENT) if seen != ABSENT else None
            if changed is None and cached is None:
                # Unchanged since a read that found it corrupt (logged then).
                raise BadGateway(f"catalog of layer {layer_id!r} cannot be read: the stored object is corrupt")
            if changed is None:
                catalog = cached[1]  # type: ignore[index]
            else:
                raw, version = changed
                catalog = Catalog(layer_id) if version == ABSENT else Catalog.from_bytes(layer_id, raw)
            if not catalog.frames:
                # "No frames" must not be what a vanished store looks like.
                self.store.storage.check()
        except CatalogError as exc:
            self._catalog_versions[layer_id] = version  # type: ignore[assignment]  # not parsed again until it changes
            self.health.ok()  # it answered, with bytes that are not a catalog
            self.metrics.store_errors.labels("catalog").inc()
            log.error("unreadable store object %s/%s: %s", self.store.storage.url, key, exc)
            if cached:
                with self._catalog_lock:  # the last good catalog serves
                    self._catalogs[layer_id] = (now, cached[1])
                return cached[1]
            raise BadGateway(f"catalog of layer {layer_id!r} cannot be read: the stored object is corrupt") from None
        except StorageError as exc:
            self.health.failed(str(exc))
            self.metrics.store_errors.labels("unavailable").inc()
            log.debug("catalog of %s not read: %s", layer_id, exc)  # the health change is logged once
            if cached:
                return cached[1]
            raise Unavailable("the frame store is unavailable") from None
        self.health.ok()
        if version is not None:
            self._catalog_versions[layer_id] = version
        with self._catalog_lock:
            current = self._catalogs.get(layer_id)
            # A slow read that raced a faster one must not put an older catalog back.
            if current and (current[1].updated or _EPOCH) > (catalog.updated or _EPOCH):
                return current[1]
            self._catalogs[layer_id] = (now, catalog)
        return catalog

    def resolve(self, layer: Layer, time: FrameTime, run: Any = None, catalog: Catalog | None = None) -> Target:
        """What a URL's time names: a stored frame, or a nowcast from the latest one."""
        if layer.blend:
            return self._resolve_blend(layer, time, run)
        if catalog is None:
            catalog = self.catalog(layer.id)
        frame = catalog.resolve(time, run)
        if frame is not None:
            return Target(frame, frame.time)
        if time != "latest" and run is None:
            nowcast = self._nowcast_at(layer, catalog, time)
            if nowcast is not None:
                return nowcast
        what = "no frames yet" if time == "latest" else f"no frame at {format_utc(time)}"
        if run is not None:
            what += f" in run {format_utc(run)}"
        elif layer.nowcast and catalog.frames and time != "latest" and time > catalog.frames[-1].time:
            what += f" (nowcasts are every {layer.cadence_minutes} min up to {self.settings.nowcast_horizon_min} min after the latest frame)"
        raise NotFound(f"layer {layer.id!r} has {what}")

    def _resolve_blend(self, layer: Layer, time: FrameTime, run: Any) -> Target:
        if run is not None:
            raise BadRequest(f"layer {layer.id!r} blends the newest runs of {' and '.join(layer.blend)}; ask one of those for a given run")
        stack = blend.resolve(self.stacks(layer), time)
        if stack is None:
            what = "no frames yet" if time == "latest" else f"no frame at {format_utc(time)}"
            raise NotFound(f"layer {layer.id!r} has {what} (in {' or '.join(layer.blend)})")
        return Target(stack.frames[0], stack.time, under=stack.frames[1:])

    def nowcasts(self, layer: Layer, catalog: Catalog) -> list[Target]:
        """Nowcast frames: the layer's cadence after its latest observation, to the horizon.

        They move the latest frame with the newest motion field estimated within
        ``MOTION_MAX_AGE`` of it (the latest frame may lack one when frames
        arrived out of order).
        """
        motion = _nowcast_motion(layer, catalog)
        if motion is None:
            return []
        count = self.settings.nowcast_horizon_min // layer.cadence_minutes
        return [_nowcast_step(catalog, motion, layer, k) for k in range(1, count + 1)]

    def _nowcast_at(self, layer: Layer, catalog: Catalog, time: datetime) -> Target | None:
        """The one nowcast at ``time``, without listing them all (cached tiles ask on every request)."""
        motion = _nowcast_motion(layer, catalog)
        if motion is None:
            return None
        k, off_step = divmod(time - catalog.frames[-1].time, timedelta(minutes=layer.cadence_minutes))
        if off_step or not 1 <= k <= self.settings.nowcast_horizon_min // layer.cadence_minutes:
            return None
        return _nowcast_step(catalog, motion, layer, k)

    # -- tiles --------------------------------------------------------------

    @staticmethod
    def definition_digest(layer_id: str, colormap: str) -> str:
        """Of the layer's and the colormap's definitions: part of tile and loop ETags."""
        return definition_digest(layer_id, colormap)

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

    @staticmethod
    def check_colormap(layer_id: str, colormap: str) -> None:
        try:
            check_compatible(layer_id, colormap)
        except colormaps.UnknownColormapError:
            raise BadRequest(f"unknown colormap {colormap!r}; see /api/colormaps") from None
        except ColormapMismatchError as exc:
            raise BadRequest(str(exc)) from None

    def prepare_tile(self, request: TileRequest, catalog: Catalog | None = None) -> tuple[Target, str, str]:
        """Resolve the frame and compute validators without rendering (for 304s).

        With a ``catalog`` in hand this does no I/O, so the server runs it on its event loop.
        """
        if request.format == "png":
            self.check_colormap(request.layer.id, request.colormap)
        target = self.resolve(request.layer, request.time, request.run, catalog)
        return target, self.tile_etag(request, target), self.cache_control(request, target)

    def cached(self, key: str) -> bytes | None:
        """Bytes kept under ``key`` (a tile's or a loop's ETag), or None."""
        with self._tiles_lock:  # an LRU lookup reorders the cache: not thread-safe alone
            return self.tiles.get(key)

    def cached_tile(self, etag: str) -> bytes | None:
        """A tile from the LRU, counted as a hit; None (and nothing counted) if absent."""
        body = self.cached(etag)
        if body is not None:
            self.metrics.count_tile("hit", len(body))
        return body

    def keep_tile(self, key: str, body: bytes) -> None:
        if _entry_size(body) <= self.tiles.maxsize:
            with self._tiles_lock:
                self.tiles[key] = body

    def render_tile(self, request: TileRequest, target: Target, etag: str) -> bytes:
        """The tile's bytes, from the cache or rendered and kept; ``etag`` is its cache key."""
        body = self.cached_tile(etag)
        if body is None:
            body = self._render(request, target)
            self.keep_tile(etag, body)
            self.metrics.count_tile("miss", len(body))
        return body

    def _render(self, request: TileRequest, target: Target) -> bytes:
        frame = target.frame
        if target.is_nowcast:
            field = self.motion_field(target)
            if request.format == "png" and not _intersects(request.tile, frame.bounds, margin_m=field.reach(target.lead_s)):
                return transparent_png(request.size)
            departures = self.departures(target)
            codes = self._read(frame, lambda dataset: nowcast_tile(dataset, request.tile, request.size, departures))
        elif target.under:
            codes = self._blend_tile(request, target)
            if codes is None:
                return transparent_png(request.size)
        else:
            if request.format == "png" and not _intersects(request.tile, frame.bounds):
                return transparent_png(request.size)
            codes = self._read(frame, lambda dataset: read_tile(dataset, request.tile, request.size))
        if request.format == "npy":
            return render_npy(request.layer.encoding.decode(codes))
        return render_png(codes, color_table(request.layer.id, request.colormap))

    def _blend_tile(self, request: TileRequest, target: Target) -> np.ndarray | None:
        """A blend's tile: each source's codes where the ones before it have none; None if no source reaches it."""
        nodata = request.layer.encoding.nodata
        codes = None
        for frame in (target.frame, *target.under):
            if not _intersects(request.tile, frame.bounds):
                continue
            more = self._read(frame, lambda dataset: read_tile(dataset, request.tile, request.size))
            codes = more if codes is None else blend.fill(codes, nodata, more)
            if not (codes == nodata).any():
                break
        if codes is None and request.format == "npy":
            codes = np.full((request.size, request.size), nodata, dtype=request.layer.encoding.dtype)
        return codes

    def motion_field(self, target: Target) -> MotionField:
        assert target.motion is not None
        with self._motion_lock:
            field = self._motion.get(target.motion)
        if field is None:
            field = self._read(target.frame, load_motion, key=target.motion)
            with self._motion_lock:
                self._motion[target.motion] = field
        return field

    def departures(self, target: Target) -> Departures:
        """Where the nowcast's trajectories start: traced once per motion field and lead."""
        assert target.motion is not None
        return self._departures.get(target.motion, self.motion_field(target), target.lead_s)

    def _read(self, frame: Frame, read: Any, key: str | None = None) -> Any:
        """``read(dataset)`` on the frame's file (or its ``key``, e.g. its motion field)."""
        key = key or frame.key
        self._fail_fast_while_down()
        path = self.store.storage.gdal_path(key)
        try:
            with self.datasets.open(path) as dataset:
                result = read(dataset)
        except Exception as exc:  # GDAL read errors surface as several rasterio types
            self.datasets.forget(path)
            gdalcache.forget(path)
            raise self._diagnose(frame, key, exc) from None
        self.health.ok()
        return result

    def _fail_fast_while_down(self) -> None:
        """While the store is down, a read that needs it fails at once (503).

        Waiting out GDAL's timeouts would hold render threads that metadata
        requests need too; a background check notices the store's return.
        """
        if self.health.status == "down":
            self._check_in_background()
            raise Unavailable("the frame store is unavailable; try again shortly")

    def _diagnose(self, frame: Frame, key: str, exc: Exception) -> ApiError:
        """Why a frame could not be read, asked of the store itself.

        GDAL reports a missing object, an unreachable store and a corrupt file
        alike in places; one cheap existence check tells them apart.
        """
        what = f"frame {format_utc(frame.time)} of layer {frame.layer!r}"
        text = str(exc)
        if any(marker in text for marker in NETWORK_FAILURES):
            self.metrics.store_errors.labels("unavailable").inc()
            self.health.failed(f"reading {key}: {text.splitlines()[0]}")
            return Unavailable(f"the frame store is unavailable; {what} cannot be read now")
        try:
            present = self.store.storage.exists(key)
        except StorageError as error:
            self.metrics.store_errors.labels("unavailable").inc()
            self.health.failed(str(error))
            return Unavailable(f"the frame store is unavailable; {what} cannot be read now")
        self.health.ok()
        if not present:
            return NotFound(f"{what} is no longer available")
        if key != frame.key:
            what = f"motion field of {what}"
        return self._corrupt(key, what, exc)

    def _corrupt(self, key: str, what: str, exc: Exception) -> BadGateway:
        """A store object that is there but cannot be decoded: the store's fault, not the client's."""
        self.metrics.store_errors.labels("unreadable").inc()
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error("unreadable store object %s/%s: %s", self.store.storage.url, key, detail)
        return BadGateway(f"{what} cannot be read: the stored object is corrupt")

    # -- points -------------------------------------------------------------

    def point(self, layer: Layer, lon: float, lat: float, time: FrameTime, run: Any = None) -> dict[str, Any]:
        target = self.resolve(layer, time, run)
        frame = target.frame
        result: dict[str, Any] = {
            "layer": layer.id, "time": format_utc(target.time),
            "run": format_utc(frame.run) if frame.run else None,
            "lon": lon, "lat": lat, "units": layer.units,
        }
        if target.is_nowcast:
            departures = self.departures(target)
            code = self._read(frame, lambda dataset: nowcast_point(dataset, lon, lat, departures))
            result["nowcast"] = {"from": format_utc(frame.time), "lead_minutes": round(target.lead_s / 60)}
        else:
            for frame in (target.frame, *target.under):  # a blend: the first source with data there
                code = self._read(frame, lambda dataset: read_point(dataset, lon, lat))
                if code is not None and code != layer.encoding.nodata:
                    break
            if layer.blend:  # which model the value came from, even where only one had a frame then
                result["source"] = {"layer": frame.layer, "model": LAYERS[frame.layer].model, "run": format_utc(frame.run) if frame.run else None}
        return {**result, **self._value(layer, code)}

    # -- point series --------------------------------------------------------

    def series(self, layer: Layer, lon: float, lat: float, start: datetime | None = None,
               end: datetime | None = None, run: datetime | None = None) -> dict[str, Any]:
        """Values at a point over time: observed frames then nowcasts, or a model run.

        Read from the point-series sidecars (two small reads per frame, in
        parallel), so 48 hours of 5-minute frames answer in tens of milliseconds.
        """
        if layer.blend:
            return self._blend_series(layer, lon, lat, start, end, run)
        catalog = self.catalog(layer.id)
        if layer.kind == "forecast":
            chosen_run = run or (catalog.runs()[-1] if catalog.runs() else None)
            if run is not None and run not in catalog.runs():
                raise NotFound(f"layer {layer.id!r} has no run {format_utc(run)}")
            frames = [f for f in catalog.frames if f.run == chosen_run]
        else:
            frames = list(catalog.frames)
        frames = [f for f in frames if (start is None or f.time >= start) and (end is None or f.time <= end)]
        if len(frames) > MAX_SERIES_FRAMES:
            raise BadRequest(f"{len(frames)} frames match; ask for at most {MAX_SERIES_FRAMES} with start= and end=")
        x, y = mercantile.xy(lon, lat)
        codes = self._codes_at(catalog, frames, x, y)
        values = [
            {"time": format_utc(f.time), **self._value(layer, code), "kind": "forecast" if f.run else "observed",
             **({"run": format_utc(f.run)} if f.run else {})}
            for f, code in zip(frames, codes, strict=True)
        ]
        nowcasts = [n for n in self.nowcasts(layer, catalog) if end is None or n.time <= end] if run is None else []
        if nowcasts:
            departures = [self.departures(n).at(x, y) for n in nowcasts]
            codes = list(self._series_pool.map(lambda d: self._code_at(nowcasts[0].frame, *d), departures))
            values += [
                {"time": format_utc(n.time), **self._value(layer, code), "kind": "nowcast", "lead_minutes": round(n.lead_s / 60)}
                for n, code in zip(nowcasts, codes, strict=True)
            ]
        return {"layer": layer.id, "lon": lon, "lat": lat, "units": layer.units, "values": values}

    def _blend_series(self, layer: Layer, lon: float, lat: float, start: datetime | None, end: datetime | None, run: Any) -> dict[str, Any]:
        """A blend's series: at each valid time, the first source with a value at the point."""
        if run is not None:
            raise BadRequest(f"layer {layer.id!r} blends the newest runs of {' and '.join(layer.blend)}; ask one of those for a given run")
        found = [s for s in self.stacks(layer) if (start is None or s.time >= start) and (end is None or s.time <= end)]
        if len(found) > MAX_SERIES_FRAMES:
            raise BadRequest(f"{len(found)} frames match; ask for at most {MAX_SERIES_FRAMES} with start= and end=")
        x, y = mercantile.xy(lon, lat)
        nodata = layer.encoding.nodata
        chosen: list[Frame] = [stack.frames[0] for stack in found]
        codes = self._codes_at(Catalog(layer.id), chosen, x, y)
        for depth in range(1, max((len(s.frames) for s in found), default=0)):
            pending = [i for i, code in enumerate(codes) if (code is None or code == nodata) and len(found[i].frames) > depth]
            more = self._codes_at(Catalog(layer.id), [found[i].frames[depth] for i in pending], x, y)
            for i, code in zip(pending, more, strict=True):
                if code is not None and code != nodata:
                    codes[i], chosen[i] = code, found[i].frames[depth]
        values = [
            {"time": format_utc(stack.time), **self._value(layer, code), "kind": "forecast", "layer": frame.layer,
             **({"run": format_utc(frame.run)} if frame.run else {})}
            for stack, frame, code in zip(found, chosen, codes, strict=True)
        ]
        return {"layer": layer.id, "lon": lon, "lat": lat, "units": layer.units, "values": values}

    def _codes_at(self, catalog: Catalog, frames: list[Frame], x: float, y: float) -> list[int | None]:
        """Codes of many frames at a point: hour packs first, sidecars for the rest."""
        wanted = {f.time: f for f in frames}
        packs = [p for p in catalog.packs if wanted.keys() & set(p.times)]
        found: dict[datetime, int | None] = {}
        for pack, codes in zip(packs, self._series_pool.map(lambda p: self._pack_codes(p, x, y), packs), strict=True):
            for time, code in zip(pack.times, codes, strict=True):
                frame = wanted.get(time)
                if frame is not None and frame.grid == pack.grid:
                    found[time] = code
        loose = [f for f in frames if f.time not in found]
        for frame, code in zip(loose, self._series_pool.map(lambda f: self._code_at(f, x, y), loose), strict=True):
            found[frame.time] = code
        return [found[f.time] for f in frames]

    def _pack_codes(self, pack: Pack, x: float, y: float) -> list[int | None]:
        grid = SeriesGrid(*pack.grid)
        cell = grid.cell(x, y)
        if cell is None:
            return [None] * len(pack.times)
        col, row = cell
        start, length = pack_index_range(grid, col, row)
        try:
            offset, size, fill = decode_entry(self._series_chunk(pack.key, start, length), len(pack.times))
            if size == 0:
                return [fill] * len(pack.times)
            blob = self._series_chunk(pack.key, offset, size)
            return values_in_pack_chunk(blob, _SERIES_DTYPES[catalog_layer(pack.key)], len(pack.times), col, row)  # type: ignore[return-value]
        except StorageError as exc:
            if isinstance(exc, KeyNotFound):
                log.error("series pack %s is missing: %s", pack.key, exc)
                return [None] * len(pack.times)
            self.health.failed(str(exc))
            raise Unavailable("the frame store is unavailable") from None
        except CORRUPT_BYTES as exc:
            raise self._corrupt(pack.key, f"series pack of layer {catalog_layer(pack.key)!r} for {format_utc(pack.hour)}", exc) from None

    def _code_at(self, frame: Frame, x: float, y: float) -> int | None:
        if frame.series is None or frame.grid is None:
            lon, lat = mercantile.lnglat(x, y)  # an older frame without sidecar: ask the COG
            return self._read(frame, lambda dataset: read_point(dataset, lon, lat))
        grid = SeriesGrid(*frame.grid)
        cell = grid.cell(x, y)
        if cell is None:
            return None
        col, row = cell
        start, length = index_range(grid, col, row)
        try:
            entry = self._series_chunk(frame.series, start, length)
            offset, size, fill = decode_entry(entry)
            if size == 0:
                return fill
            return value_in_chunk(self._series_chunk(frame.series, offset, size), _SERIES_DTYPES[frame.layer], col, row)
        except StorageError as exc:
            if isinstance(exc, KeyNotFound):
                log.error("series sidecar %s is missing: %s", frame.series, exc)
                return None
            self.health.failed(str(exc))
            raise Unavailable("the frame store is unavailable") from None
        except CORRUPT_BYTES as exc:
            raise self._corrupt(frame.series, f"series sidecar of frame {format_utc(frame.time)} of layer {frame.layer!r}", exc) from None

    def _series_chunk(self, key: str, start: int, length: int) -> bytes:
        cache_key = (key, start, length)
        with self._series_lock:
            cached = self._series_cache.get(cache_key)
        if cached is None:
            self._fail_fast_while_down()
            cached = self.store.storage.read_range(key, start, length)
            with self._series_lock:
                self._series_cache[cache_key] = cached
        return cached

    @staticmethod
    def _value(layer: Layer, code: int | None) -> dict[str, Any]:
        if code is None or code == layer.encoding.nodata:
            return {"value": None, "status": "no-coverage"}
        if code == layer.encoding.no_echo:
            return {"value": None, "status": "no-echo"}
        value = float(layer.encoding.decode(np.array([code], dtype=layer.encoding.dtype))[0])
        return {"value": round(value, 4), "status": "ok"}

    # -- metadata -----------------------------------------------------------

    def layer_info(self, layer: Layer, base_url: str, hours: float | None = None) -> dict[str, Any]:
        """A layer's metadata and frame times; ``hours`` keeps only recent ones.

        Recent means within ``hours`` of the newest observation for an observed
        layer; for a forecast layer, the runs issued within ``hours`` of the
        newest run (at least that one) and their valid times.
        """
        catalog = self.catalog(layer.id)
        runs = catalog.runs()
        if layer.blend:
            found = self.stacks(layer)
            visible = [frame for stack in found for frame in stack.frames]
            stack = blend.resolve(found, "latest")
            latest: Frame | None = stack.frames[0] if stack else None
            newest = max(visible, key=lambda f: f.native_zoom) if visible else None
            times = [stack.time for stack in found]
            if hours is not None and times:
                times = [t for t in times if t >= times[-1] - timedelta(hours=hours)]
        else:
            visible = catalog.visible_frames()
            listed = visible
            if hours is not None and catalog.frames:
                window = timedelta(hours=hours)
                if layer.kind == "forecast":
                    runs = [run for run in runs if run >= runs[-1] - window]
                    listed = [f for f in visible if f.run is not None and f.run >= runs[0]]
                else:
                    listed = [f for f in visible if f.time >= visible[-1].time - window]
            latest = catalog.resolve("latest")
            newest = catalog.frames[-1] if catalog.frames else None
            times = [f.time for f in listed]
        info: dict[str, Any] = {
            "id": layer.id,
            "title": layer.title,
            "units": layer.units,
            "kind": layer.kind,
            "model": layer.model,
            "colormap": layer.colormap,
            "value_range": list(layer.value_range),
            "bounds": list(_union_bounds(visible)) if visible else [-180.0, -85.0511287798066, 180.0, 85.0511287798066],
            "minzoom": 0,
            "maxzoom": newest.native_zoom if newest else 0,
            "cadence_minutes": layer.cadence_minutes,
            "attribution": layer.attribution,
            "frames": [format_utc(t) for t in times],
            "latest": format_utc(latest.time) if latest else None,
            "nowcast": [
                {"time": format_utc(n.time), "lead_minutes": round(n.lead_s / 60)} for n in self.nowcasts(layer, catalog)
            ],
            "tiles": f"{base_url}tiles/{layer.id}/{{time}}/{{z}}/{{x}}/{{y}}.png",
            "legend": f"{base_url}api/colormaps/{layer.colormap}/legend.png",
        }
        if layer.blend:
            info["blend"] = [self._blend_source(source) for source in layer.blend]
        elif layer.kind == "forecast":
            info["runs"] = [
                {"run": format_utc(run), "frames": [format_utc(f.time) for f in catalog.frames if f.run == run]}
                for run in runs
            ]
        return info

    def _blend_source(self, layer_id: str) -> dict[str, Any]:
        """Which model fills which area of a blend: each source's footprint and newest run, in order of preference."""
        catalog = self.catalog(layer_id)
        visible = catalog.visible_frames()
        runs = catalog.runs()
        return {
            "layer": layer_id, "model": LAYERS[layer_id].model,
            "bounds": list(_union_bounds(visible)) if visible else None,
            "newest_run": format_utc(runs[-1]) if runs else None,
        }

    def verification(self, layer: Layer) -> dict[str, Any]:
        """Live verification of the layer's nowcasts: scores pooled over the rolling window."""
        if not layer.nowcast:
            raise NotFound(f"layer {layer.id!r} has no nowcasts to verify")
        return summary(layer, self._verification_record(layer.id), self.store.retention.verification)

    def _verification_record(self, layer_id: str) -> Record | None:
        """The stored record, re-read at most every ``catalog_ttl_s``; the last one if the store fails."""
        cached = self._verification.get(layer_id)
        if cached and _time.monotonic() - cached[0] < self.settings.catalog_ttl_s:
            return cached[1]
        try:
            record = self.store.load_verification(layer_id)
        except (CatalogError, StorageError) as exc:
            log.error("verification of %s: %s", layer_id, exc)
            self.metrics.store_errors.labels("catalog" if isinstance(exc, CatalogError) else "unavailable").inc()
            if cached:
                return cached[1]
            raise Unavailable(f"the verification record of layer {layer_id!r} cannot be read") from None
        self._verification[layer_id] = (_time.monotonic(), record)
        return record

    def _cached_verification(self) -> dict[str, dict[str, Any]]:
        # Like catalogs: the collector reads memory; /metrics refreshes the records first.
        return {layer_id: summary(LAYERS[layer_id], record, self.store.retention.verification)
                for layer_id, (_, record) in list(self._verification.items())}

    def _cached_catalogs(self) -> dict[str, Catalog]:
        # The collector reads memory only; /metrics refreshes the catalogs first, within their TTL.
        with self._catalog_lock:
            return {layer_id: catalog for layer_id, (_, catalog) in self._catalogs.items()}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """Readiness, and the store's health beside it.

        Ready once the store has been reached and every catalog read once (a
        corrupt one counts as read: it answers 502, the other layers serve).
        From then on a store outage degrades the pod without making it unready:
        cached tiles and catalogs keep serving, uncached reads get 503, and
        each probe starts a check in the background that notices the store's
        return (a probe never waits on a dead store).
        """
        if self._warm:
            self._check_in_background()
            return True, {"status": "ready", "store": self.health.to_json()}
        try:
            self.store.storage.check()
            for layer_id in LAYERS:
                try:
                    self._read_catalog(layer_id)
                except BadGateway:
                    pass  # logged; that layer answers 502 until its catalog is mended
        except (StorageError, Unavailable) as exc:
            if isinstance(exc, StorageError):
                self.health.failed(str(exc))
            return False, {"status": "not ready", "detail": self.health.error or str(exc), "store": self.health.to_json()}
        self._warm = True
        return True, {"status": "ready", "store": self.health.to_json()}

    def _check_in_background(self) -> None:
        """One check of the store at a time, at most one a second, off the caller's thread."""
        with self._catalog_lock:
            now = _time.monotonic()
            if self._checking or now - self._checked_at < STORE_CHECK_INTERVAL_S:
                return
            self._checking = True
            self._checked_at = now

        def check() -> None:
            try:
                self.store.storage.check()
                self.health.ok()
            except StorageError as exc:
                self.health.failed(str(exc))
            finally:
                self._checking = False

        try:
            self._refresh_pool.submit(check)
        except RuntimeError:  # shutting down
            self._checking = False

    def close(self) -> None:
        self._series_pool.shutdown(wait=False, cancel_futures=True)
        self._refresh_pool.shutdown(wait=False, cancel_futures=True)
        self.datasets.close()


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


def _nowcast_motion(layer: Layer, catalog: Catalog) -> str | None:
    """The motion field nowcasts from the latest frame use."""
    if not layer.nowcast or not catalog.frames:
        return None
    return catalog.nowcast_motion(catalog.frames[-1])


def _nowcast_step(catalog: Catalog, motion: str, layer: Layer, k: int) -> Target:
    base = catalog.frames[-1]
    lead = k * timedelta(minutes=layer.cadence_minutes)
    return Target(base, base.time + lead, lead.total_seconds(), motion)


def _entry_size(body: bytes) -> int:
    return len(body) + TILE_ENTRY_OVERHEAD


def catalog_layer(key: str) -> str:
    return key.split("/", 1)[0]


def _intersects(tile: mercantile.Tile, bounds: tuple[float, float, float, float], margin_m: float = 0.0) -> bool:
    """Does the tile, grown by ``margin_m`` mercator metres, touch the lon/lat bounds?

    Bounds with west > east cross the antimeridian (RFC 7946): they are two boxes,
    one each side of 180 deg.
    """
    west_lon, south_lat, east_lon, north_lat = bounds
    if west_lon > east_lon:
        return _intersects(tile, (west_lon, south_lat, 180.0, north_lat), margin_m) or _intersects(
            tile, (-180.0, south_lat, east_lon, north_lat), margin_m)
    left, bottom, right, top = mercantile.xy_bounds(tile)
    west, south = mercantile.xy(west_lon, south_lat)
    east, north = mercantile.xy(east_lon, north_lat)
    return left - margin_m < east and right + margin_m > west and bottom - margin_m < north and top + margin_m > south


def _union_bounds(frames: list[Frame]) -> tuple[float, float, float, float]:
    # A frame across the antimeridian makes the layer span every longitude:
    # map clients read west > east inconsistently.
    crossing = any(f.bounds[0] > f.bounds[2] for f in frames)
    return (
        -180.0 if crossing else min(f.bounds[0] for f in frames), min(f.bounds[1] for f in frames),
        180.0 if crossing else max(f.bounds[2] for f in frames), max(f.bounds[3] for f in frames),
    )
