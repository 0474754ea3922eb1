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

from ingest.sources.base import Failure, FetchError, FetchOptions, FetchReport, FrameRef
from ingest.sources.models import Model, parse_leads
from ingest.sources.registry import SOURCES, Source, UnknownSourceError, fetch, get_source
from ingest.sources.s3 import SourceUnavailable, make_client
from ingest.sources.watch import watch

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
