"""Live NOAA data fetchers, chosen by name (``get_source("mrms")``), pySTEPS style.

* ``mrms``: MRMS radar composite reflectivity and precipitation rate (2-min files).
* ``hrrr``, ``gfs``: the GRIB messages the forecast layers need, by HTTP range
  requests guided by the ``.idx`` inventories.

:func:`fetch` runs one source once; :func:`watch` runs sources every interval
(fetch, then prune). Buckets and the endpoint come from
:class:`~tileserver.core.settings.Settings` (``mrms_bucket``, ``hrrr_bucket``,
``gfs_bucket``, ``noaa_endpoint``); access is anonymous.
"""

from __future__ import annotations

from typing import Protocol

from botocore.client import BaseClient

from ingest.sources.base import Failure, FetchError, FetchOptions, FetchReport, FrameRef
from ingest.sources.models import GFS, HRRR, Model, ModelSource, parse_leads
from ingest.sources.mrms import MrmsSource
from ingest.sources.s3 import SourceUnavailable, make_client
from tileserver.core.settings import Settings
from tileserver.store import Store

__all__ = [
    "SOURCES",
    "Failure",
    "FetchError",
    "FetchOptions",
    "FetchReport",
    "FrameRef",
    "Model",
    "Source",
    "SourceUnavailable",
    "UnknownSourceError",
    "fetch",
    "get_source",
    "make_client",
    "parse_leads",
    "watch",
]


class Source(Protocol):
    name: str
    description: str
    uses_since: bool  # takes a backfill window (observations)
    uses_runs: bool  # takes a model run and leads

    def layer_ids(self) -> list[str]: ...

    def fetch(self, store: Store, settings: Settings, client: BaseClient, options: FetchOptions) -> FetchReport: ...


SOURCES: dict[str, Source] = {
    "mrms": MrmsSource(),
    "hrrr": ModelSource(HRRR),
    "gfs": ModelSource(GFS),
}


class UnknownSourceError(FetchError, KeyError):
    def __str__(self) -> str:
        return f"unknown source {self.args[0]!r}; known sources: {', '.join(SOURCES)}"


def get_source(name: str) -> Source:
    try:
        return SOURCES[name.lower()]
    except KeyError:
        raise UnknownSourceError(name) from None


def fetch(
    source_name: str,
    store: Store,
    settings: Settings,
    options: FetchOptions = FetchOptions(),
    *,
    client: BaseClient | None = None,
) -> FetchReport:
    """Fetch what is new from one source into ``store`` and prune the layers that changed.

    ``mrms``: files within ``since`` (default 2 h) before ``now`` whose times the
    catalogs do not hold. ``hrrr`` / ``gfs``: ``run`` (default: the newest run
    that has all ``leads``), ``leads`` in hours (defaults: HRRR 0..18, GFS
    0..24 every 3 h), only (layer, valid, run) frames not yet stored. ``layers``
    narrows the layers filled (default: all the source can fill).

    One file's problem is a :class:`Failure` in the report and the rest still go
    in. Raises :class:`FetchError` (one line) for bad options and
    :class:`SourceUnavailable` when the endpoint or bucket cannot be used after
    retries.
    """
    source = get_source(source_name)
    if client is None:
        client = make_client(settings)
    return source.fetch(store, settings, client, options)


from ingest.sources.watch import watch  # noqa: E402  (uses fetch and get_source above)
