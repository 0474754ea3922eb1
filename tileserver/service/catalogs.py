"""The store as the server sees it: catalogs, frame reads and the store's health.

Catalogs are cached for ``catalog_ttl_s`` and refreshed in the background, so
no request queues behind a catalog read; frames are read through pooled
dataset handles, and a failed read is diagnosed (gone, store down, corrupt)
by asking the store itself. Readiness is the store's health.
"""

from __future__ import annotations

import logging
import struct
import threading
import time as _time
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from tileserver.core import gdalcache
from tileserver.core.layers import LAYERS, Layer
from tileserver.core.reader import DatasetPool
from tileserver.core.settings import Settings
from tileserver.core.timeutil import format_utc
from tileserver.core.verification import Record, summary
from tileserver.service import blend, targets
from tileserver.service.errors import ApiError, BadGateway, NotFound, Unavailable
from tileserver.service.health import StoreHealth
from tileserver.service.metrics import CatalogCollector, Metrics, VerificationCollector
from tileserver.service.params import FrameTime
from tileserver.service.targets import Target
from tileserver.store import Catalog, CatalogError, Frame, Store, catalog_key
from tileserver.store.storage import KeyNotFound, StorageError

log = logging.getLogger(__name__)

# How GDAL's curl layer words a store that is down or too slow.
NETWORK_FAILURES = ("timed out", "Couldn't connect", "Connection refused", "HTTP error code: 0", "HTTP error code: 5")
# While the store is down, requests and probes check it at most this often.
STORE_CHECK_INTERVAL_S = 1.0
# The version token of a catalog that does not exist (a layer never ingested).
ABSENT = "absent"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# What decoding a truncated or garbled sidecar, pack or catalog raises.
CORRUPT_BYTES = (struct.error, zlib.error, ValueError, IndexError, KeyError, TypeError)
# Past its TTL a catalog keeps answering, for at most this long, while one
# background read refreshes it: requests never queue behind a catalog read.
CATALOG_STALE_GRACE_S = 30.0


class Catalogs:
    def __init__(self, store: Store, settings: Settings, metrics: Metrics) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        metrics.registry.register(CatalogCollector(self._cached_catalogs))
        metrics.registry.register(VerificationCollector(self._cached_verification))
        # Hot frames keep a handle per render thread; all frames together keep
        # two per frame on average (each idle handle holds about 0.35 MB).
        self.datasets = DatasetPool(max_paths=settings.open_datasets, idle_per_path=settings.threads,
                                    max_idle=2 * settings.open_datasets)
        self._catalogs: dict[str, tuple[float, Catalog]] = {}
        # The store's version token of each catalog last read (see Storage.read_if_changed).
        self._catalog_versions: dict[str, str] = {}
        self.health = StoreHealth(on_change=metrics.store_up.set)
        self._warm = False
        self._checking = False
        self._checked_at = -STORE_CHECK_INTERVAL_S
        self._catalog_lock = threading.Lock()
        self._verification: dict[str, tuple[float, Record | None]] = {}
        self._refreshing: set[str] = set()
        self._refresh_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="catalog")

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

    def target(self, layer: Layer, time: FrameTime, run: Any = None, catalog: Catalog | None = None) -> Target:
        """What a URL's time names: a stored frame, a blend's frames, or a nowcast from the latest frame.

        With a ``catalog`` in hand this does no I/O.
        """
        if layer.blend:
            return targets.resolve_blend(layer, self.stacks(layer), time, run)
        if catalog is None:
            catalog = self.catalog(layer.id)
        return targets.resolve(layer, catalog, time, run, self.settings.nowcast_horizon_min)

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

    def read(self, frame: Frame, read: Any, key: str | None = None) -> Any:
        """``read(dataset)`` on the frame's file (or its ``key``, e.g. its motion field)."""
        key = key or frame.key
        self.fail_fast_while_down()
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

    def fail_fast_while_down(self) -> None:
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
        return self.corrupt(key, what, exc)

    def corrupt(self, key: str, what: str, exc: Exception) -> BadGateway:
        """A store object that is there but cannot be decoded: the store's fault, not the client's."""
        self.metrics.store_errors.labels("unreadable").inc()
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.error("unreadable store object %s/%s: %s", self.store.storage.url, key, detail)
        return BadGateway(f"{what} cannot be read: the stored object is corrupt")

    def verification_record(self, layer_id: str) -> Record | None:
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
        self._refresh_pool.shutdown(wait=False, cancel_futures=True)
        self.datasets.close()
