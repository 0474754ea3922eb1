"""Values at a point: one time, or a time series read from the point-series sidecars."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
from cachetools import LRUCache

from tileserver.core import grid
from tileserver.core.layers import LAYERS, Layer
from tileserver.core.reader import read_point
from tileserver.core.settings import Settings
from tileserver.core.timeutil import format_utc
from tileserver.service import targets
from tileserver.service.catalogs import CORRUPT_BYTES, Catalogs
from tileserver.service.errors import BadRequest, NotFound, Unavailable
from tileserver.service.nowcast import Nowcasts
from tileserver.service.params import FrameTime
from tileserver.store import Catalog, Frame, Pack
from tileserver.store.series import SeriesGrid, decode_entry, index_range, pack_index_range, value_in_chunk, values_in_pack_chunk
from tileserver.store.storage import KeyNotFound, StorageError

log = logging.getLogger(__name__)

# 48 h of 2-minute MRMS frames, with room to spare.
MAX_SERIES_FRAMES = 2000
_SERIES_DTYPES = {layer.id: {"uint8": "u1", "uint16": "u2", "int16": "i2"}[layer.encoding.dtype] for layer in LAYERS.values()}


class Points:
    def __init__(self, catalogs: Catalogs, nowcasts: Nowcasts, settings: Settings) -> None:
        self.catalogs = catalogs
        self.nowcasts = nowcasts
        self.settings = settings
        # Sidecar index entries and chunks: small, re-read by every series query nearby.
        self._series_cache: LRUCache[tuple[str, int, int], bytes] = LRUCache(maxsize=32 * 2**20, getsizeof=len)
        self._series_lock = threading.Lock()
        # Store reads release the GIL (pread, HTTP): many in flight cover S3 latency.
        self._series_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="series")

    def point(self, layer: Layer, lon: float, lat: float, time: FrameTime, run: Any = None) -> dict[str, Any]:
        target = self.catalogs.target(layer, time, run)
        frame = target.frame
        result: dict[str, Any] = {
            "layer": layer.id, "time": format_utc(target.time),
            "run": format_utc(frame.run) if frame.run else None,
            "lon": lon, "lat": lat, "units": layer.units,
        }
        if target.is_nowcast:
            code = self.nowcasts.point_code(target, lon, lat)
            result["nowcast"] = {"from": format_utc(frame.time), "lead_minutes": round(target.lead_s / 60)}
        else:
            for frame in (target.frame, *target.under):  # a blend: the first source with data there
                code = self.catalogs.read(frame, lambda dataset: read_point(dataset, lon, lat))
                if code is not None and code != layer.encoding.nodata:
                    break
            if layer.blend:  # which model the value came from, even where only one had a frame then
                result["source"] = {"layer": frame.layer, "model": LAYERS[frame.layer].model, "run": format_utc(frame.run) if frame.run else None}
        return {**result, **self._value(layer, code)}

    def series(self, layer: Layer, lon: float, lat: float, start: datetime | None = None,
               end: datetime | None = None, run: datetime | None = None) -> dict[str, Any]:
        """Values at a point over time: observed frames then nowcasts, or a model run.

        Read from the point-series sidecars (two small reads per frame, in
        parallel), so 48 hours of 5-minute frames answer in tens of milliseconds.
        """
        if layer.blend:
            return self._blend_series(layer, lon, lat, start, end, run)
        catalog = self.catalogs.catalog(layer.id)
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
        x, y = grid.xy(lon, lat)
        codes = self._codes_at(catalog, frames, x, y)
        values = [
            {"time": format_utc(f.time), **self._value(layer, code), "kind": "forecast" if f.run else "observed",
             **({"run": format_utc(f.run)} if f.run else {})}
            for f, code in zip(frames, codes, strict=True)
        ]
        nowcasts = [n for n in targets.nowcasts(layer, catalog, self.settings.nowcast_horizon_min) if end is None or n.time <= end] if run is None else []
        if nowcasts:
            departures = [self.nowcasts.departures(n).at(x, y) for n in nowcasts]
            codes = list(self._series_pool.map(lambda d: self._code_at(nowcasts[0].frame, *d), departures))
            values += [
                {"time": format_utc(n.time), **self._value(layer, code), "kind": "nowcast", "lead_minutes": round(n.lead_s / 60)}
                for n, code in zip(nowcasts, codes, strict=True)
            ]
        return {"layer": layer.id, "lon": lon, "lat": lat, "units": layer.units, "values": values}

    def _blend_series(self, layer: Layer, lon: float, lat: float, start: datetime | None, end: datetime | None, run: Any) -> dict[str, Any]:
        """A blend's series: at each valid time, the first source with a value at the point."""
        targets.refuse_run(layer, run)
        found = [s for s in self.catalogs.stacks(layer) if (start is None or s.time >= start) and (end is None or s.time <= end)]
        if len(found) > MAX_SERIES_FRAMES:
            raise BadRequest(f"{len(found)} frames match; ask for at most {MAX_SERIES_FRAMES} with start= and end=")
        x, y = grid.xy(lon, lat)
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
            self.catalogs.health.failed(str(exc))
            raise Unavailable("the frame store is unavailable") from None
        except CORRUPT_BYTES as exc:
            raise self.catalogs.corrupt(pack.key, f"series pack of layer {catalog_layer(pack.key)!r} for {format_utc(pack.hour)}", exc) from None

    def _code_at(self, frame: Frame, x: float, y: float) -> int | None:
        if frame.series is None or frame.grid is None:
            lon, lat = grid.lnglat(x, y)  # an older frame without sidecar: ask the COG
            return self.catalogs.read(frame, lambda dataset: read_point(dataset, lon, lat))
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
            self.catalogs.health.failed(str(exc))
            raise Unavailable("the frame store is unavailable") from None
        except CORRUPT_BYTES as exc:
            raise self.catalogs.corrupt(frame.series, f"series sidecar of frame {format_utc(frame.time)} of layer {frame.layer!r}", exc) from None

    def _series_chunk(self, key: str, start: int, length: int) -> bytes:
        cache_key = (key, start, length)
        with self._series_lock:
            cached = self._series_cache.get(cache_key)
        if cached is None:
            self.catalogs.fail_fast_while_down()
            cached = self.catalogs.store.storage.read_range(key, start, length)
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

    def close(self) -> None:
        self._series_pool.shutdown(wait=False, cancel_futures=True)


def catalog_layer(key: str) -> str:
    return key.split("/", 1)[0]
