"""MRMS: the newest radar composites and precipitation rates from ``noaa-mrms-pds``.

Layout: ``CONUS/{Product}_{level}/{YYYYMMDD}/MRMS_{Product}_{level}_{YYYYMMDD-HHMMSS}.grib2.gz``,
a file every 2 minutes with irregular seconds. A fetch lists only the day
prefixes the backfill window touches (starting each listing at the window's
first file name), drops files whose time the layer's catalog already holds,
and downloads and ingests the rest, newest first so ``latest`` moves forward
at once during a long backfill.
"""

from __future__ import annotations

import logging
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from botocore.client import BaseClient
from tqdm import tqdm

from ingest.errors import IngestError
from ingest.pipeline import ingest_file
from ingest.sources import s3
from ingest.sources.base import Failure, FetchError, FetchOptions, FetchReport, FrameRef, fetching
from tileserver.core.layers import get_layer
from tileserver.core.settings import Settings
from tileserver.store import Store
from tileserver.core.timeutil import format_utc, utcnow

log = logging.getLogger(__name__)

DEFAULT_SINCE = timedelta(hours=2)
REGION = "CONUS"


@dataclass(frozen=True)
class MrmsProduct:
    product: str  # MergedReflectivityQCComposite
    level: str  # 00.50
    layer: str  # reflectivity

    @property
    def folder(self) -> str:
        return f"{REGION}/{self.product}_{self.level}/"

    def file_name(self, valid: datetime) -> str:
        return f"MRMS_{self.product}_{self.level}_{valid:%Y%m%d-%H%M%S}.grib2.gz"

    def key(self, valid: datetime) -> str:
        return f"{self.folder}{valid:%Y%m%d}/{self.file_name(valid)}"

    def parse_time(self, key: str) -> datetime | None:
        match = re.fullmatch(
            rf"MRMS_{re.escape(self.product)}_{re.escape(self.level)}_(\d{{8}}-\d{{6}})\.grib2\.gz", key.rsplit("/", 1)[-1]
        )
        if not match:
            return None
        try:
            return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
        except ValueError:
            return None


PRODUCTS: tuple[MrmsProduct, ...] = (
    MrmsProduct("MergedReflectivityQCComposite", "00.50", "reflectivity"),
    MrmsProduct("PrecipRate", "00.00", "precip-rate"),
)


@dataclass(frozen=True)
class _Candidate:
    product: MrmsProduct
    key: str
    time: datetime
    size: int


class MrmsSource:
    name = "mrms"
    description = "MRMS CONUS radar composite reflectivity and precipitation rate (2-min)"
    uses_since = True
    uses_runs = False

    def __init__(self, products: Sequence[MrmsProduct] = PRODUCTS) -> None:
        self.products = tuple(products)

    def layer_ids(self) -> list[str]:
        return [p.layer for p in self.products]

    def fetch(self, store: Store, settings: Settings, client: BaseClient, options: FetchOptions) -> FetchReport:
        now, since, run, leads, layers, progress = (
            options.now, options.since, options.run, options.leads, options.layers, options.progress,
        )
        if run is not None or leads is not None:
            raise FetchError("mrms: observations have no model run or leads (--run/--leads are for hrrr and gfs)")
        since = DEFAULT_SINCE if since is None else since
        if since <= timedelta(0):
            raise FetchError("mrms: the backfill window must be longer than 0")
        now = (now or utcnow()).astimezone(timezone.utc)
        start = now - since
        bucket = settings.mrms_bucket
        products = self.products
        if layers is not None:
            unknown = set(layers) - {p.layer for p in products}
            if unknown:
                raise FetchError(f"mrms fills layers {', '.join(p.layer for p in products)}, not {', '.join(sorted(unknown))}")
            products = tuple(p for p in products if p.layer in layers)

        report = FetchReport("mrms")
        todo: list[_Candidate] = []
        for product in products:
            stored = {f.time for f in store.load_catalog(product.layer).frames}
            for candidate in self._list(client, bucket, product, start, now):
                if candidate.time in stored:
                    report.skipped.append(FrameRef(product.layer, candidate.time, None))
                else:
                    todo.append(candidate)
        # Newest first, alternating products, so each layer's latest frame comes in early.
        todo.sort(key=lambda c: (c.time, c.product.layer), reverse=True)

        with fetching(store, report), tempfile.TemporaryDirectory(prefix="wxtiles-mrms-") as tmp, tqdm(
            todo, unit="file", desc="mrms", disable=not progress or len(todo) < 2, leave=False,
        ) as bar:
            for candidate in bar:
                failure = self._fetch_one(client, bucket, store, candidate, Path(tmp), report)
                if failure is not None:
                    report.failures.append(failure)
                    log.debug("%s", failure)
                    if progress:
                        bar.write(str(failure), file=sys.stderr)
        return report

    def _list(self, client: BaseClient, bucket: str, product: MrmsProduct, start: datetime, end: datetime) -> list[_Candidate]:
        found = []
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day <= end:
            prefix = f"{product.folder}{day:%Y%m%d}/"
            # Keys sort by time within a day: begin the listing at the window's start.
            start_after = prefix + product.file_name(start)[: -len(".grib2.gz")] if day.date() == start.date() else ""
            for key, size in s3.list_keys(client, bucket, prefix, start_after):
                valid = product.parse_time(key)
                if valid is not None and start <= valid <= end:
                    found.append(_Candidate(product, key, valid, size))
            day += timedelta(days=1)
        return found

    def _fetch_one(
        self, client: BaseClient, bucket: str, store: Store, candidate: _Candidate, tmp: Path, report: FetchReport,
    ) -> Failure | None:
        url = f"s3://{bucket}/{candidate.key}"
        layer = get_layer(candidate.product.layer)
        try:
            download = s3.get_bytes(client, bucket, candidate.key)
        except s3.ObjectError as exc:
            return Failure(url, str(exc), (layer.id,))
        report.requests += 1
        report.bytes_downloaded += len(download.data)
        report.object_bytes += download.object_size or len(download.data)
        path = tmp / candidate.key.rsplit("/", 1)[-1]
        path.write_bytes(download.data)
        try:
            result = ingest_file(store, path, layer, time=candidate.time)
        except IngestError as exc:
            return Failure(url, str(exc), (layer.id,))
        finally:
            path.unlink(missing_ok=True)
        ref = FrameRef(layer.id, candidate.time, None)
        (report.ingested if result.status == "published" else report.skipped).append(ref)
        log.debug("ingested %s from %s", format_utc(candidate.time), url)
        return None
