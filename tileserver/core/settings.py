"""All configuration, read once from ``WXTILES_*`` environment variables.

Every knob lives here so the README, the Kubernetes ConfigMap and the code agree
on one list. Invalid values raise :class:`SettingsError` with a one-line message
naming the variable; the CLI prints it and exits non-zero.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

PREFIX = "WXTILES_"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    # Where frames and catalogs live: a folder path (an s3:// URL in production).
    store: str = "./data"
    # Memory of the in-process LRU of encoded tiles, per worker process, entries'
    # bookkeeping included: a worker serves in about 250 MB plus this.
    cache_mb: int = 96
    # Threads per worker for work off the event loop (rendering, store reads).
    # More than a few per core only adds GIL contention for local stores; raise
    # it for a store with high latency.
    threads: int = 8
    # How long a loaded catalog is trusted before the store is asked again.
    catalog_ttl_s: float = 2.0
    # Cache-Control max-age for URLs whose content can change (``latest``, forecast
    # valid times without ``run``); time-stamped observed frames are immutable.
    latest_max_age_s: int = 60
    frame_max_age_s: int = 7 * 24 * 3600
    # Retention: observations older than this before a layer's newest frame are
    # pruned; forecast layers keep only their newest runs.
    retention_hours: float = 48.0
    keep_runs: int = 3
    # Live nowcast verification pools the scored nowcasts of this many hours.
    verification_hours: float = 6.0
    # Nowcast frames reach this far past the latest observation, on the layer's cadence.
    nowcast_horizon_min: int = 120
    # Loops rendered at once per worker, in megapixels (width x height x frames,
    # at most 40 each); a loop beyond it waits up to RENDER_WAIT_S, then gets 503.
    render_budget_mp: float = 48.0
    render_wait_s: float = 10.0
    # Open datasets kept between requests (file handles).
    open_datasets: int = 64
    # NOAA open-data buckets that ``wxtiles fetch`` reads (anonymously), and an
    # optional S3 endpoint URL for them (a mirror; empty = AWS).
    mrms_bucket: str = "noaa-mrms-pds"
    hrrr_bucket: str = "noaa-hrrr-bdp-pds"
    gfs_bucket: str = "noaa-gfs-bdp-pds"
    noaa_endpoint: str = ""
    # Proxies whose X-Forwarded-Proto/Host/Prefix/For headers are believed:
    # addresses or networks, comma separated, or * (inside a cluster).
    forwarded_allow_ips: str = "127.0.0.1"
    # Allowed CORS origins for GET, comma separated.
    cors_origins: str = "*"
    log_level: str = "info"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            name = PREFIX + field.name.upper()
            raw = environ.get(name)
            if raw is None or raw == "":
                continue
            kind = type(field.default)
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
            if kind in (int, float) and not (math.isfinite(value) and value >= 0):  # type: ignore[arg-type, operator]
                raise SettingsError(f"{name}={raw!r} must be a finite number, not negative")
            values[field.name] = value
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.verification_hours <= 0:
            raise SettingsError(f"{PREFIX}VERIFICATION_HOURS must be more than 0")
        if settings.keep_runs < 1:
            raise SettingsError(f"{PREFIX}KEEP_RUNS must be at least 1")
        if settings.log_level not in LOG_LEVELS:
            raise SettingsError(f"{PREFIX}LOG_LEVEL={settings.log_level!r}: use one of {', '.join(LOG_LEVELS)}")
        if settings.open_datasets < 1:
            raise SettingsError(f"{PREFIX}OPEN_DATASETS must be at least 1")
        for part in settings.forwarded_allow_ips.split(","):
            try:
                if part.strip() not in ("*", ""):
                    ipaddress.ip_network(part.strip(), strict=False)
            except ValueError:
                raise SettingsError(f"{PREFIX}FORWARDED_ALLOW_IPS: {part.strip()!r} is not an address or network (or *)") from None
        if settings.render_budget_mp <= 0:
            raise SettingsError(f"{PREFIX}RENDER_BUDGET_MP must be more than 0")
        if settings.threads < 1:
            raise SettingsError(f"{PREFIX}THREADS must be at least 1")
        return settings

    @staticmethod
    def variable_names() -> list[str]:
        return [PREFIX + f.name.upper() for f in fields(Settings)]

