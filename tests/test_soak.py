"""A short soak: mixed load while ingest and prune race it; no 5xx, memory bounded."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def test_short_soak_has_no_server_errors() -> None:
    spec = importlib.util.spec_from_file_location("soak", Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py")
    assert spec and spec.loader
    soak = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = soak  # dataclasses look their module up
    spec.loader.exec_module(soak)
    report = soak.run_soak(seconds=25, connections=16, shape=(350, 700), frames=4, ingest_every_s=3.0, cache_mb=16)
    assert report.requests > 100
    assert report.ingests >= 3, report.ingest_errors
    assert report.ingest_errors == []
    assert report.server_errors == 0, report.statuses
    assert set(report.statuses) <= {200, 304, 404}, report.statuses
    assert max(m for _, m in report.rss_mb) < 600
