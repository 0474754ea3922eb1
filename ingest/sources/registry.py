"""The sources by name, and one fetch of one source."""

from __future__ import annotations

from typing import Protocol

from botocore.client import BaseClient

from ingest.sources.base import FetchError, FetchOptions, FetchReport
from ingest.sources.models import GFS, HRRR, ModelSource
from ingest.sources.mrms import MrmsSource
from ingest.sources.s3 import make_client
from tileserver.core.settings import Settings
from tileserver.store import Store


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
