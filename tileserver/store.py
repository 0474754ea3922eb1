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
``tileserver/verification.py``) holds the scored nowcasts of a rolling window;
it is updated by the same compare-and-swap as catalogs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from tileserver.layers import Layer, get_layer
from tileserver.series import write_pack
from tileserver.settings import Settings
from tileserver.storage import KeyNotFound, Storage, StorageError
from tileserver.timeutil import compact_utc, format_utc, parse_utc, utcnow
from tileserver.verification import Record

log = logging.getLogger(__name__)

CATALOG_FORMAT = "wxtiles-catalog/1"
Bounds = tuple[float, float, float, float]  # west, south, east, north in degrees
# Files under a layer that no catalog names (an interrupted ingest, a pruned frame
# a reader still had open) are swept after this long.
ORPHAN_GRACE_S = 600.0
CATALOG_UPDATE_ATTEMPTS = 20
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
    # Key and grid of the point-series sidecar (tileserver/series.py).
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


def _parse_record(layer_id: str, raw: bytes) -> Record:
    try:
        return Record.from_bytes(layer_id, raw)
    except ValueError as exc:
        raise CatalogError(str(exc)) from None


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


@dataclass(frozen=True)
class Retention:
    observed: timedelta = timedelta(hours=48)
    keep_runs: int = 3
    # Rolling window of live nowcast verification.
    verification: timedelta = timedelta(hours=6)

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        return cls(observed=timedelta(hours=settings.retention_hours), keep_runs=settings.keep_runs,
                   verification=timedelta(hours=settings.verification_hours))


@dataclass
class PublishResult:
    frame: Frame
    status: Literal["published", "unchanged"]


def _catalog_parser(layer_id: str) -> Callable[[bytes | None], Catalog]:
    return lambda raw: Catalog.from_bytes(layer_id, raw) if raw is not None else Catalog(layer_id)


@dataclass
class Store:
    storage: Storage
    retention: Retention = field(default_factory=Retention)

    def load_catalog(self, layer_id: str) -> Catalog:
        try:
            raw = self.storage.read_bytes(catalog_key(layer_id))
        except KeyNotFound:
            return Catalog(layer_id)
        return Catalog.from_bytes(layer_id, raw)

    def publish(
        self,
        layer: Layer,
        cog: Path,
        *,
        time: datetime,
        run: datetime | None,
        digest: str,
        bounds: Bounds,
        native_zoom: int,
        source: str,
        motion: Path | None = None,
        series: tuple[Path, tuple[float, float, float, int, int]] | None = None,
        started: float | None = None,
    ) -> PublishResult:
        """Put a finished COG in the store, then list it in the catalog.

        Same layer, time, run and content as an existing frame: nothing changes.
        Different content: :class:`FrameConflictError`, the stored frame is kept.
        """
        key = frame_key(layer, time, run, digest)
        frame = Frame(
            layer=layer.id, time=time, run=run, key=key, digest=digest, bounds=bounds,
            native_zoom=native_zoom, size=cog.stat().st_size, source=source, ingested=utcnow(),
            motion=motion_key(key) if motion is not None else None,
            series=series_key(key) if series is not None else None,
            grid=series[1] if series is not None else None,
            ingest_seconds=round(_time.monotonic() - started, 3) if started is not None else None,
        )
        current = self._load_versioned(layer.id)
        existing = current[0].find(time, run)
        if existing is not None:
            result = self._same_or_conflict(existing, frame)
            if not self.storage.exists(existing.key):
                # Listed but its file lost (a sweep raced an earlier publish): repair it.
                self.storage.put_file(cog, existing.key)
            return result
        # Always (re)write the file, even if an orphan of an interrupted ingest has
        # this key: a same-named file has the same content, and a fresh write keeps
        # the orphan sweep from deleting it before the catalog names it.
        self.storage.put_file(cog, key)
        if motion is not None and frame.motion:
            self.storage.put_file(motion, frame.motion)
        if series is not None and frame.series:
            self.storage.put_file(series[0], frame.series)
        result: PublishResult | None = None

        def add(catalog: Catalog) -> Catalog | None:
            nonlocal result
            found = catalog.find(time, run)
            if found is not None:
                result = self._same_or_conflict(found, frame)
                return None
            result = PublishResult(frame, "published")
            return catalog.with_frame(frame)

        self._update_catalog(layer.id, add, current)
        assert result is not None
        return result

    def attach_motion(self, layer_id: str, frame: Frame, motion: Path) -> None:
        """Add a motion field to an already published frame (estimated after it arrived)."""
        key = motion_key(frame.key)
        self.storage.put_file(motion, key)

        def set_motion(catalog: Catalog) -> Catalog | None:
            if not any(f.key == frame.key and not f.motion for f in catalog.frames):
                return None
            frames = tuple(replace(f, motion=key) if f.key == frame.key else f for f in catalog.frames)
            return replace(catalog, frames=frames, updated=utcnow())

        self._update_catalog(layer_id, set_motion)

    def _load_versioned(self, layer_id: str) -> tuple[Catalog, str | None]:
        return self._read_versioned(catalog_key(layer_id), _catalog_parser(layer_id))

    def _read_versioned(self, key: str, parse: Callable[[bytes | None], Any]) -> tuple[Any, str | None]:
        """An object parsed (``parse(None)`` when absent) and the version its compare-and-swap writes against."""
        try:
            raw, version = self.storage.read_versioned(key)
        except KeyNotFound:
            raw, version = None, None
        return parse(raw), version

    def _update_catalog(self, layer_id: str, change: Callable[[Catalog], Catalog | None],
                        read: tuple[Catalog, str | None] | None = None) -> Catalog:
        """Read, change and write a catalog as one compare-and-swap, retried on races.

        ``change`` returns the new catalog, or None to leave it as it is;
        ``read`` is a catalog and version the caller just read, used first.
        """
        return self._compare_and_swap(
            catalog_key(layer_id), _catalog_parser(layer_id), change, lambda catalog: catalog.to_bytes(), f"catalog of layer {layer_id!r}", read,
        )

    def load_verification(self, layer_id: str) -> Record | None:
        """The layer's verification record; None before anything was scored.

        :class:`CatalogError` if it exists but cannot be parsed.
        """
        try:
            raw = self.storage.read_bytes(verification_key(layer_id))
        except KeyNotFound:
            return None
        return _parse_record(layer_id, raw)

    def update_verification(self, layer_id: str, change: Callable[[Record | None], Record | None]) -> Record | None:
        """Change the verification record as one compare-and-swap, as catalogs are.

        An unreadable record is started afresh: it only summarises frames, and
        keeping it would stop verification for good.
        """

        def parse(raw: bytes | None) -> Record | None:
            try:
                return _parse_record(layer_id, raw) if raw is not None else None
            except CatalogError as exc:
                log.warning("%s: starting it afresh", exc)
                return None

        return self._compare_and_swap(
            verification_key(layer_id), parse, change, lambda record: record.to_bytes(), f"verification record of layer {layer_id!r}",
        )

    def _compare_and_swap(self, key: str, parse: Callable[[bytes | None], Any], change: Callable[[Any], Any],
                          encode: Callable[[Any], bytes], what: str, read: tuple[Any, str | None] | None = None) -> Any:
        """``read``: the parsed value and version the caller just read, tried first (saves a read and a parse)."""
        for attempt in range(CATALOG_UPDATE_ATTEMPTS):
            current, version = read if read is not None and attempt == 0 else self._read_versioned(key, parse)
            changed = change(current)
            if changed is None:
                return current
            if self.storage.write_if(key, encode(changed), version):
                return changed
            # Another writer got there first: back off a little and redo the change on its result.
            _time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise StorageError(f"{what} kept changing under {CATALOG_UPDATE_ATTEMPTS} attempts to update it")

    @staticmethod
    def _same_or_conflict(existing: Frame, frame: Frame) -> PublishResult:
        if existing.digest == frame.digest:
            return PublishResult(existing, "unchanged")
        when = format_utc(frame.time) + (f" (run {format_utc(frame.run)})" if frame.run else "")
        raise FrameConflictError(
            f"{frame.layer} {when}: a different frame is already published; frames are immutable"
        )

    def prune(self, layer_id: str, now: float | None = None) -> list[Frame]:
        """Drop frames outside the retention window, then sweep unlisted files."""
        layer = get_layer(layer_id)
        expired: list[Frame] = []

        def drop(catalog: Catalog) -> Catalog | None:
            nonlocal expired
            expired = self._expired(layer, catalog)
            return catalog.without({f.key for f in expired}) if expired else None

        catalog = self._update_catalog(layer_id, drop)
        # Entries are gone from the catalog before their files: a reader holding an
        # old catalog gets "frame gone" (404), never a half-deleted frame.
        for frame in expired:
            for key in frame.keys:
                self.storage.delete(key)
        if layer.kind == "observed":
            catalog = self._pack_series(layer, catalog)
        listed = {key for f in catalog.frames for key in f.keys} | {p.key for p in catalog.packs}
        self._sweep(layer_id, listed, now if now is not None else _time.time())
        if expired:
            log.info("pruned %d frames of %s", len(expired), layer_id)
        return expired

    def _pack_series(self, layer: Layer, catalog: Catalog) -> Catalog:
        """Roll each complete hour's sidecars into one pack; drop packs with no frame left.

        An hour is complete once a frame of a later hour exists. Packs are an
        optimisation: any failure here leaves the sidecars, which still answer.
        """
        live = {f.time for f in catalog.frames}
        stale = [p for p in catalog.packs if not live.intersection(p.times)]
        hours: dict[datetime, list[Frame]] = {}
        for frame in catalog.frames:
            if frame.series and frame.grid:
                hours.setdefault(frame.time.replace(minute=0, second=0), []).append(frame)
        packed = {p.hour for p in catalog.packs}
        newest_hour = catalog.frames[-1].time.replace(minute=0, second=0) if catalog.frames else None
        new: list[Pack] = []
        for hour, frames in sorted(hours.items()):
            if hour in packed or hour == newest_hour or len(frames) < 2 or len({f.grid for f in frames}) != 1:
                continue
            try:
                new.append(self._write_pack(layer, hour, frames))
            except (StorageError, ValueError, OSError) as exc:
                log.warning("%s: no series pack for %s: %s", layer.id, format_utc(hour), exc)
        if not new and not stale:
            return catalog

        def change(current: Catalog) -> Catalog | None:
            keep = [p for p in current.packs if p not in stale and p.hour not in {n.hour for n in new}]
            return replace(current, packs=tuple(sorted([*keep, *new], key=lambda p: p.hour)), updated=utcnow())

        catalog = self._update_catalog(layer.id, change)
        for pack in stale:
            self.storage.delete(pack.key)
        return catalog

    def _write_pack(self, layer: Layer, hour: datetime, frames: list[Frame]) -> Pack:
        sidecars = [self.storage.read_bytes(f.series) for f in frames if f.series]
        digest = hashlib.sha256("".join(f.digest for f in frames).encode()).hexdigest()[:12]
        key = f"{layer.id}/packs/{compact_utc(hour)}-{digest}.bin"
        out = self.storage.temporary_path(".pack.bin")
        try:
            write_pack(sidecars, out)
            self.storage.put_file(out, key)
        finally:
            out.unlink(missing_ok=True)
        assert frames[0].grid is not None
        return Pack(key, hour, tuple(f.time for f in frames), frames[0].grid)

    def _expired(self, layer: Layer, catalog: Catalog) -> list[Frame]:
        if not catalog.frames:
            return []
        if layer.kind == "forecast":
            keep = set(catalog.runs()[-self.retention.keep_runs :])
            return [f for f in catalog.frames if f.run not in keep]
        # Measured from the newest frame (an archive keeps its last 48 h), but never
        # from a time in the future, which a wrong clock could have written.
        cutoff = min(catalog.frames[-1].time, utcnow()) - self.retention.observed
        return [f for f in catalog.frames if f.time < cutoff]

    def _sweep(self, layer_id: str, listed: set[str], now: float) -> None:
        for obj in self.storage.list(f"{layer_id}/"):
            if obj.key not in listed and now - obj.modified > ORPHAN_GRACE_S:
                self.storage.delete(obj.key)
        for obj in self.storage.list(".tmp/"):
            if now - obj.modified > ORPHAN_GRACE_S * 6:
                self.storage.delete(obj.key)
