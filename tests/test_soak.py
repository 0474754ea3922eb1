"""A short soak: mixed load while ingest and prune race it; no 5xx, memory bounded."""

from __future__ import annotations

from benchmarks.soak import run_soak


def test_short_soak_has_no_server_errors() -> None:
    report = run_soak(seconds=25, connections=16, shape=(350, 700), frames=4, ingest_every_s=3.0, cache_mb=16)
    assert report.requests > 100
    assert report.ingests >= 3, report.ingest_errors
    assert report.ingest_errors == []
    assert report.server_errors == 0, report.statuses
