"""Publishing, pruning and reading catalogs and verification records in a storage backend.

Publishing writes the COG under its final key first and only then replaces the
catalog (one atomic compare-and-swap write, retried if another writer changed
it meanwhile), so a reader never finds an entry whose file is incomplete and
concurrent ingests never lose each other's entries. Pruning removes entries
first and files after. The layout and catalog format are in
``tileserver/store/catalog.py``.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from tileserver.core.layers import Layer, get_layer
from tileserver.core.settings import Settings
from tileserver.core.timeutil import compact_utc, format_utc, utcnow
from tileserver.core.verification import Record
from tileserver.store.catalog import (
    Bounds, Catalog, CatalogError, Frame, FrameConflictError, Pack, catalog_key, frame_key, motion_key, series_key, verification_key,
)
from tileserver.store.series import write_pack
from tileserver.store.storage import KeyNotFound, Storage, StorageError

log = logging.getLogger(__name__)

# Files under a layer that no catalog names (an interrupted ingest, a pruned frame
# a reader still had open) are swept after this long.
ORPHAN_GRACE_S = 600.0
CATALOG_UPDATE_ATTEMPTS = 20


def _parse_record(layer_id: str, raw: bytes) -> Record:
    try:
        return Record.from_bytes(layer_id, raw)
    except ValueError as exc:
        raise CatalogError(str(exc)) from None


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
