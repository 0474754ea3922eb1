"""HRRR and GFS: only the GRIB messages the forecast layers need, by HTTP range.

For each forecast lead of a run, the fetcher reads the wgrib2 inventory
(``.idx``), picks the messages every forecast layer of the registry needs
of that model (``layer.model``; ``layer.selector``: elements or vector
components, at GDAL level names such as ``2-HTGL``), reads just those byte
ranges (adjacent ones in one request), checks that each range is one whole
GRIB message, writes them into one local GRIB2 file and ingests it once per
layer. A new model layer in the registry (say ``model = "hrrr"`` with
composite reflectivity ``REFC`` at ``0-EATM``) is fetched with no change here.

The two models differ only by data (:class:`Model`): key templates, run hours,
how far each run goes, and default leads.
"""

from __future__ import annotations

import logging
import re
import struct
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from botocore.client import BaseClient
from tqdm import tqdm

from ingest.errors import IngestError
from ingest.pipeline import ingest_file
from ingest.sources import s3
from ingest.sources.base import Failure, FetchError, FetchOptions, FetchReport, FrameRef, fetching
from ingest.sources.idx import (
    ByteRange,
    IdxEntry,
    IdxError,
    MissingFieldError,
    fields_for_layer,
    is_grib_layer,
    merge_ranges,
    message_range,
    parse_idx,
)
from tileserver.core.layers import LAYERS, Layer, UnknownLayerError, get_layer
from tileserver.core.settings import Settings
from tileserver.store import Store
from tileserver.core.timeutil import format_utc, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Model:
    name: str
    title: str
    bucket_setting: str  # the Settings field naming the bucket
    key_template: str  # str.format with run (datetime) and lead (int hours)
    run_every_h: int
    default_leads: tuple[int, ...]
    # How many runs back ``latest`` looks for one that has the leads.
    search_runs: int
    produces: Callable[[datetime, int], bool]  # does the run have this lead?
    lead_note: str  # the rule behind ``produces``, for messages

    def bucket(self, settings: Settings) -> str:
        return str(getattr(settings, self.bucket_setting))

    def key(self, run: datetime, lead: int) -> str:
        return self.key_template.format(run=run, lead=lead)

    def is_run(self, run: datetime) -> bool:
        return run.minute == 0 and run.second == 0 and run.microsecond == 0 and run.hour % self.run_every_h == 0

    def floor_run(self, when: datetime) -> datetime:
        when = when.astimezone(timezone.utc)
        return when.replace(hour=when.hour - when.hour % self.run_every_h, minute=0, second=0, microsecond=0)


def _hrrr_produces(run: datetime, lead: int) -> bool:
    return 0 <= lead <= (48 if run.hour % 6 == 0 else 18)


def _gfs_produces(run: datetime, lead: int) -> bool:
    return 0 <= lead <= 120 or (lead <= 384 and lead % 3 == 0)


HRRR = Model(
    name="hrrr",
    title="HRRR CONUS surface fields (3 km, hourly runs)",
    bucket_setting="hrrr_bucket",
    key_template="hrrr.{run:%Y%m%d}/conus/hrrr.t{run:%H}z.wrfsfcf{lead:02d}.grib2",
    run_every_h=1,
    default_leads=tuple(range(0, 19)),
    search_runs=12,
    produces=_hrrr_produces,
    lead_note="HRRR runs go to 18 h, to 48 h at 00/06/12/18Z",
)

GFS = Model(
    name="gfs",
    title="GFS 0.25 degree (runs at 00/06/12/18Z)",
    bucket_setting="gfs_bucket",
    key_template="gfs.{run:%Y%m%d}/{run:%H}/atmos/gfs.t{run:%H}z.pgrb2.0p25.f{lead:03d}",
    run_every_h=6,
    default_leads=tuple(range(0, 25, 3)),
    search_runs=8,
    produces=_gfs_produces,
    lead_note="GFS leads are hourly to 120 h, then 3-hourly to 384 h",
)


def parse_leads(text: str) -> list[int]:
    """Lead hours from ``"0-18"``, ``"0,3,6"``, ``"0-24/3"`` or a mix (``"0-6,9-24/3"``)."""
    leads: set[int] = set()
    for part in text.replace(" ", "").split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+)(?:/(\d+))?)?", part)
        if not match:
            raise FetchError(f"leads {text!r}: write hours as 0-18, 0,3,6 or 0-24/3")
        first, last, step = match.groups()
        if last is None:
            leads.add(int(first))
            continue
        if int(last) < int(first) or (step is not None and int(step) < 1):
            raise FetchError(f"leads {text!r}: {part!r} is an empty range")
        leads.update(range(int(first), int(last) + 1, int(step or 1)))
    return sorted(leads)


def forecast_layers(model: str, layer_ids: Sequence[str] | None = None) -> list[Layer]:
    """The layers a fetch of ``model`` fills: the given ones, or every layer of that model with GRIB fields.

    A model fills only its own layers, so two models never meet in one catalog
    (runs, retention and grids stay apart)."""
    if layer_ids is None:
        return [layer for layer in LAYERS.values() if layer.model == model and is_grib_layer(layer)]
    try:
        layers = [get_layer(layer_id) for layer_id in layer_ids]
    except UnknownLayerError as exc:
        raise FetchError(str(exc)) from None
    for layer in layers:
        if layer.model != model or not is_grib_layer(layer):
            own = ", ".join(other.id for other in forecast_layers(model)) or "none"
            raise FetchError(f"layer {layer.id} is not a {model} layer; a {model} fetch fills {own}")
    return layers


class ModelSource:
    """A :class:`~ingest.sources.Source` for one NWP model (HRRR, GFS)."""

    uses_since = False
    uses_runs = True

    def __init__(self, model: Model) -> None:
        self.model = model
        self.name = model.name
        self.description = model.title

    def layer_ids(self) -> list[str]:
        return [layer.id for layer in forecast_layers(self.model.name)]

    def fetch(self, store: Store, settings: Settings, client: BaseClient, options: FetchOptions) -> FetchReport:
        now, since, run, leads, layers, progress = (
            options.now, options.since, options.run, options.leads, options.layers, options.progress,
        )
        model = self.model
        if since is not None:
            raise FetchError(f"{model.name}: --since applies to observations (mrms); pick a model run with --run")
        bucket = model.bucket(settings)
        wanted_layers = forecast_layers(self.model.name, layers)
        lead_list = sorted(set(int(lead) for lead in (model.default_leads if leads is None else leads)))
        if not lead_list:
            raise FetchError(f"{model.name}: no leads to fetch")
        if min(lead_list) < 0:
            raise FetchError(f"{model.name}: leads are hours after the run, 0 or more")
        report = FetchReport(model.name)
        if run is None:
            run = self._latest_run(client, bucket, lead_list, now or utcnow())
        else:
            run = run.astimezone(timezone.utc)
            if not model.is_run(run):
                raise FetchError(f"{model.name}: {format_utc(run)} is not a run time (runs every {model.run_every_h} h on the hour)")
            beyond = [lead for lead in lead_list if not model.produces(run, lead)]
            if beyond:
                raise FetchError(f"{model.name} run {format_utc(run)} has no lead {', '.join(map(str, beyond))} h ({model.lead_note})")
        report.run = run
        catalogs = {layer.id: {(f.time, f.run) for f in store.load_catalog(layer.id).frames} for layer in wanted_layers}
        with fetching(store, report), tempfile.TemporaryDirectory(prefix=f"wxtiles-{model.name}-") as tmp, tqdm(
            lead_list, unit="lead", desc=f"{model.name} {run:%Y-%m-%d %HZ}",
            disable=not progress or len(lead_list) < 2, leave=False,
        ) as bar:
            for lead in bar:
                valid = run + timedelta(hours=lead)
                todo = []
                for layer in wanted_layers:
                    if (valid, run) in catalogs[layer.id]:
                        report.skipped.append(FrameRef(layer.id, valid, run))
                    else:
                        todo.append(layer)
                if todo:
                    self._fetch_lead(client, bucket, store, run, lead, todo, Path(tmp), report, bar if progress else None)
        return report

    # ------------------------------------------------------------------

    def _latest_run(self, client: BaseClient, bucket: str, leads: list[int], now: datetime) -> datetime:
        """The newest run that already has the last of ``leads`` (its .idx is written last)."""
        model = self.model
        last = max(leads)
        candidate = model.floor_run(now)
        looked = 0
        for _ in range(model.search_runs):
            if all(model.produces(candidate, lead) for lead in leads):
                looked += 1
                if s3.exists(client, bucket, model.key(candidate, last) + ".idx"):
                    return candidate
            candidate -= timedelta(hours=model.run_every_h)
        span = model.search_runs * model.run_every_h
        if not looked:
            raise FetchError(f"{model.name}: no run in the {span} h before {format_utc(now)} has leads up to {last} h ({model.lead_note})")
        raise FetchError(
            f"{model.name}: no run in the {span} h before {format_utc(now)} has lead {last} h in s3://{bucket} yet"
        )

    def _fetch_lead(
        self, client: BaseClient, bucket: str, store: Store, run: datetime, lead: int,
        layers: list[Layer], tmp: Path, report: FetchReport, bar: tqdm | None,
    ) -> None:
        model = self.model
        key = model.key(run, lead)
        url = f"s3://{bucket}/{key}"
        ids = tuple(layer.id for layer in layers)
        valid = run + timedelta(hours=lead)

        def fail(reason: str, which: tuple[str, ...] = ids, where: str = url) -> None:
            failure = Failure(where, reason, which)
            report.failures.append(failure)
            log.debug("%s", failure)
            if bar is not None:
                bar.write(str(failure), file=sys.stderr)

        # The inventory.
        try:
            download = s3.get_bytes(client, bucket, key + ".idx")
        except s3.ObjectError as exc:
            fail(str(exc), where=url + ".idx")
            return
        report.requests += 1
        report.bytes_downloaded += len(download.data)
        try:
            entries = parse_idx(download.data.decode("utf-8", errors="replace"))
        except IdxError as exc:
            fail(f"unreadable .idx: {exc}", where=url + ".idx")
            return
        stated = {e.run for e in entries}
        if stated != {run}:
            other = ", ".join(format_utc(r) if r else "?" for r in sorted(stated, key=lambda r: r or run))
            fail(f".idx is for run {other}, not {format_utc(run)}", where=url + ".idx")
            return

        # What each layer needs.
        needs: dict[str, list[IdxEntry]] = {}
        for layer in layers:
            try:
                needs[layer.id] = fields_for_layer(entries, layer)
            except MissingFieldError as exc:
                fail(str(exc), (layer.id,), url + ".idx")
        if not needs:
            return
        spans = {e.offset: message_range(entries, e) for chosen in needs.values() for e in chosen}

        # The bytes: merged ranges, then split back into messages and checked.
        messages: dict[int, bytes] = {}
        bad: dict[int, str] = {}
        sized = False
        for chunk_range in merge_ranges(spans.values()):
            try:
                download = s3.get_bytes(client, bucket, key, chunk_range.start, chunk_range.end)
            except s3.MissingObject as exc:
                fail(str(exc), tuple(needs))
                return
            except s3.ObjectError as exc:
                for offset in spans:
                    if offset >= chunk_range.start and (chunk_range.end is None or offset < chunk_range.end):
                        bad[offset] = str(exc)
                continue
            report.requests += 1
            report.bytes_downloaded += len(download.data)
            if download.object_size and not sized:
                sized = True
                report.object_bytes += download.object_size
            for offset, span in spans.items():
                if offset < chunk_range.start or (chunk_range.end is not None and offset >= chunk_range.end):
                    continue
                part = download.data[offset - chunk_range.start : None if span.end is None else span.end - chunk_range.start]
                problem = _check_message(part, span)
                if problem:
                    bad[offset] = problem
                else:
                    messages[offset] = part

        ready = [layer for layer in layers if layer.id in needs and all(e.offset in messages for e in needs[layer.id])]
        for layer in layers:
            if layer.id in needs and layer not in ready:
                reasons = sorted({f"{e.describe()}: {bad[e.offset]}" for e in needs[layer.id] if e.offset in bad})
                fail("; ".join(reasons) or "message not downloaded", (layer.id,))
        if not ready:
            return

        path = tmp / Path(key).name
        with open(path, "wb") as handle:
            for offset in sorted({e.offset for layer in ready for e in needs[layer.id]}):
                handle.write(messages[offset])
        try:
            for layer in ready:
                try:
                    result = ingest_file(store, path, layer, time=valid, run=run)
                except IngestError as exc:
                    fail(str(exc), (layer.id,))
                    continue
                ref = FrameRef(layer.id, valid, run)
                (report.ingested if result.status == "published" else report.skipped).append(ref)
        finally:
            path.unlink(missing_ok=True)


def _check_message(data: bytes, span: ByteRange) -> str | None:
    """None if ``data`` is exactly one whole GRIB2 message as the .idx says, else why not."""
    if len(data) < 16 or data[:4] != b"GRIB":
        return f"bytes {span.header[6:]} do not start a GRIB message (stale .idx?)"
    edition = data[7]
    if edition != 2:
        return f"bytes {span.header[6:]} are a GRIB{edition} message, not GRIB2"
    total = struct.unpack(">Q", data[8:16])[0]
    if len(data) < total:
        return f"truncated: {len(data)} of the message's {total} bytes"
    if len(data) > total:
        return f"the .idx says {len(data)} bytes but the message has {total} (stale .idx?)"
    if data[-4:] != b"7777":
        return "message does not end with 7777 (corrupt)"
    return None
