"""The store layout and catalog: the contract between ingest and the tile server.

Layout (keys relative to ``WXTILES_STORE``)::

    catalog/{layer}.json                                   one catalog per layer
    {layer}/{YYYY}/{MM}/{DD}/{valid}-{digest}.tif          observed frames
    {layer}/{YYYY}/{MM}/{DD}/{valid}-{digest}.motion.tif   their motion fields (radar layers)
    {layer}/runs/{run}/{valid}-{digest}.tif                forecast frames, per model run
    verification/{layer}.json                              live nowcast verification (radar layers)
    .tmp/  .locks/                                         local store internals

``valid`` and ``run`` are compact UTC times (``20261127T214000Z``); ``digest`` is
the first 12 hex digits of the SHA-256 of the frame's encoded grid, so a key
names exactly one content and is never overwritten.

A catalog (``"format": "wxtiles-catalog/1"``) lists a layer's frames sorted by
valid time then run; each frame entry names its key, times, digest, bounds and
source file. Publishing writes the COG under its final key first and only then
replaces the catalog (one atomic compare-and-swap write, retried if another
writer changed it meanwhile), so a reader never finds an entry whose file is
incomplete and concurrent ingests never lose each other's entries. Pruning
removes entries first and files after.

A verification record (``"format": "wxtiles-verification/1"``,
``tileserver/core/verification.py``) holds the scored nowcasts of a rolling window;
it is updated by the same compare-and-swap as catalogs.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal

from tileserver.core.layers import Layer
from tileserver.store.storage import StorageError
from tileserver.core.timeutil import compact_utc, format_utc, parse_utc, utcnow

log = logging.getLogger(__name__)

CATALOG_FORMAT = "wxtiles-catalog/1"
Bounds = tuple[float, float, float, float]  # west, south, east, north in degrees
# A nowcast uses the newest motion estimated at most this long before its base frame.
MOTION_MAX_AGE = timedelta(minutes=20)
_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.-]*")


class CatalogError(StorageError):
    """A catalog exists but cannot be parsed."""


class FrameConflictError(ValueError):
    """A different frame is already published under the same layer, time and run."""


@dataclass(frozen=True)
class Frame:
    layer: str
    time: datetime  # valid time
    run: datetime | None  # model run (reference) time; None for observations
    key: str
    digest: str
    bounds: Bounds  # footprint of the source data, lon/lat
    native_zoom: int
    size: int
    source: str
    ingested: datetime
    # Key of the motion field estimated when this observation arrived (radar
    # layers with nowcasts), stored beside the frame.
    motion: str | None = None
    # Key and grid of the point-series sidecar (tileserver/store/series.py).
    series: str | None = None
    grid: tuple[float, float, float, int, int] | None = None
    # Seconds from the start of its ingest to publishing (for monitoring).
    ingest_seconds: float | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.key, self.motion, self.series) if k)

    def to_json(self) -> dict[str, Any]:
        return {
            "time": format_utc(self.time),
            "run": format_utc(self.run) if self.run else None,
            "key": self.key,
            "digest": self.digest,
            "bounds": list(self.bounds),
            "native_zoom": self.native_zoom,
            "size": self.size,
            "source": self.source,
            "ingested": format_utc(self.ingested),
            "motion": self.motion,
            "series": self.series,
            "grid": list(self.grid) if self.grid else None,
            "ingest_seconds": self.ingest_seconds,
        }

    @classmethod
    def from_json(cls, layer: str, data: dict[str, Any]) -> Frame:
        key = str(data["key"])
        # The catalog names files the server will open: only plain keys under the layer.
        if not _SAFE_KEY.fullmatch(key) or not key.startswith(f"{layer}/") or ".." in key:
            raise ValueError(f"frame key {key!r} is not a key of layer {layer!r}")
        motion = data.get("motion")
        if motion is not None and (not isinstance(motion, str) or motion != motion_key(key)):
            raise ValueError(f"frame {key}: motion key {motion!r} is not {motion_key(key)!r}")
        series = data.get("series")
        if series is not None and series != series_key(key):
            raise ValueError(f"frame {key}: series key {series!r} is not {series_key(key)!r}")
        grid = data.get("grid")
        if grid is not None:
            left, top, res, width, height = grid
            grid = (float(left), float(top), float(res), int(width), int(height))
            if not (res > 0 and width > 0 and height > 0):
                raise ValueError(f"frame {key}: bad series grid")
        bounds = tuple(float(v) for v in data["bounds"])
        if len(bounds) != 4 or not all(math.isfinite(v) for v in bounds):
            raise ValueError(f"frame {key}: bounds must be four finite numbers")
        return cls(
            layer=layer,
            time=parse_utc(data["time"]),
            run=parse_utc(data["run"]) if data.get("run") else None,
            key=key,
            digest=str(data["digest"]),
            bounds=bounds,  # type: ignore[arg-type]
            native_zoom=int(data["native_zoom"]),
            size=int(data["size"]),
            source=str(data.get("source", "")),
            ingested=parse_utc(data["ingested"]),
            motion=motion,
            series=series,
            grid=grid,
            ingest_seconds=float(data["ingest_seconds"]) if data.get("ingest_seconds") is not None else None,
        )


@dataclass(frozen=True)
class Pack:
    """One complete hour of point-series sidecars rolled into one object."""

    key: str
    hour: datetime
    times: tuple[datetime, ...]  # the frames it holds, in order
    grid: tuple[float, float, float, int, int]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "hour": format_utc(self.hour), "times": [format_utc(t) for t in self.times], "grid": list(self.grid)}

    @classmethod
    def from_json(cls, layer: str, data: dict[str, Any]) -> Pack:
        key = str(data["key"])
        if not _SAFE_KEY.fullmatch(key) or not key.startswith(f"{layer}/packs/") or ".." in key:
            raise ValueError(f"pack key {key!r} is not a pack of layer {layer!r}")
        left, top, res, width, height = data["grid"]
        return cls(key, parse_utc(data["hour"]), tuple(parse_utc(t) for t in data["times"]),
                   (float(left), float(top), float(res), int(width), int(height)))


@dataclass(frozen=True)
class Catalog:
    layer: str
    frames: tuple[Frame, ...] = ()
    updated: datetime | None = None
    packs: tuple[Pack, ...] = ()

    def to_bytes(self) -> bytes:
        doc = {
            "format": CATALOG_FORMAT,
            "layer": self.layer,
            "updated": format_utc(self.updated or utcnow()),
            "frames": [frame.to_json() for frame in self.frames],
            "packs": [pack.to_json() for pack in self.packs],
        }
        # Compact: 48 h of 2-minute frames is over a megabyte, written on every
        # ingest, and indenting would also make json use its pure-Python encoder.
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, layer: str, raw: bytes) -> Catalog:
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != CATALOG_FORMAT:
                raise ValueError(f"not a {CATALOG_FORMAT} document")
            if not isinstance(doc.get("frames"), list):
                raise ValueError("frames is not a list")
            frames = tuple(Frame.from_json(layer, item) for item in doc["frames"])
            packs = tuple(Pack.from_json(layer, item) for item in doc.get("packs") or [])
            updated = parse_utc(doc["updated"]) if doc.get("updated") else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CatalogError(f"catalog of layer {layer!r} is unreadable: {exc}") from exc
        return cls(layer, _sorted(frames), updated, tuple(sorted(packs, key=lambda p: p.hour)))

    def with_frame(self, frame: Frame) -> Catalog:
        return replace(self, frames=_sorted((*self.frames, frame)), updated=utcnow())

    def without(self, removed: set[str]) -> Catalog:
        return replace(self, frames=tuple(f for f in self.frames if f.key not in removed), updated=utcnow())

    def find(self, time: datetime, run: datetime | None) -> Frame | None:
        for frame in self.frames:
            if frame.time == time and frame.run == run:
                return frame
        return None

    def nowcast_motion(self, base: Frame) -> str | None:
        """The motion field nowcasts from ``base`` use: the newest within MOTION_MAX_AGE of it.

        ``base`` may lack one of its own when frames arrived out of order.
        """
        return next((f.motion for f in reversed(self.frames)
                     if f.motion and f.time <= base.time and base.time - f.time <= MOTION_MAX_AGE), None)

    def runs(self) -> list[datetime]:
        return sorted({f.run for f in self.frames if f.run is not None})

    def visible_frames(self) -> list[Frame]:
        """One frame per valid time: for forecasts, the newest run that covers it."""
        best: dict[datetime, Frame] = {}
        for frame in self.frames:
            current = best.get(frame.time)
            if current is None or (frame.run or frame.time) > (current.run or current.time):
                best[frame.time] = frame
        return [best[t] for t in sorted(best)]

    def resolve(self, time: datetime | Literal["latest"], run: datetime | None = None, now: datetime | None = None) -> Frame | None:
        """The frame a tile URL names, or None.

        ``latest`` is the newest observation; for forecast layers it is the frame
        of the newest run whose valid time is closest to now. A forecast valid
        time without ``run`` takes the newest run that covers it.
        """
        if not self.frames:
            return None
        if time == "latest":
            if self.frames[0].run is None:
                return self.frames[-1] if run is None else None
            runs = self._runs
            in_run = runs.get(run if run is not None else max(runs))
            if not in_run:
                return None
            now = now or utcnow()
            return min(in_run, key=lambda f: (abs(f.time - now), f.time))
        return self._index.get((time, run))

    # Every tile request resolves a frame: with 48 h of 2-minute frames a scan
    # of the list costs more than serving a cached tile, so index it once.
    @cached_property
    def _index(self) -> dict[tuple[datetime, datetime | None], Frame]:
        index: dict[tuple[datetime, datetime | None], Frame] = {}
        for frame in _sorted(self.frames):  # the newest run of a valid time comes last and wins
            index[(frame.time, frame.run)] = frame
            index[(frame.time, None)] = frame
        return index

    @cached_property
    def _runs(self) -> dict[datetime | None, list[Frame]]:
        runs: dict[datetime | None, list[Frame]] = {}
        for frame in self.frames:
            runs.setdefault(frame.run, []).append(frame)
        return runs



def _sorted(frames: tuple[Frame, ...] | list[Frame]) -> tuple[Frame, ...]:
    return tuple(sorted(frames, key=lambda f: (f.time, f.run or f.time)))


def catalog_key(layer: str) -> str:
    return f"catalog/{layer}.json"


def verification_key(layer: str) -> str:
    return f"verification/{layer}.json"


def motion_key(frame_key: str) -> str:
    """The motion field of a frame sits beside it: ``...-{digest}.motion.tif``."""
    return frame_key.removesuffix(".tif") + ".motion.tif"


def series_key(frame_key: str) -> str:
    return frame_key.removesuffix(".tif") + ".series.bin"


def frame_key(layer: Layer, time: datetime, run: datetime | None, digest: str) -> str:
    name = f"{compact_utc(time)}-{digest[:12]}.tif"
    if layer.kind == "forecast":
        if run is None:
            raise ValueError(f"layer {layer.id} holds forecasts: a frame needs its run time")
        return f"{layer.id}/runs/{compact_utc(run)}/{name}"
    return f"{layer.id}/{time:%Y/%m/%d}/{name}"


