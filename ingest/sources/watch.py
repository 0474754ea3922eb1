"""Keep a store current: fetch sources and prune, every interval, until stopped."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from botocore.client import BaseClient

from ingest.sources.base import FetchError, FetchOptions, FetchReport
from ingest.sources.registry import fetch, get_source
from ingest.sources.s3 import make_client
from tileserver.core.settings import Settings
from tileserver.store import Store

log = logging.getLogger("wxtiles.watch")


def watch(
    source_names: Sequence[str],
    store: Store,
    settings: Settings,
    interval_s: float,
    stop_event: threading.Event | None = None,
    *,
    since: timedelta | None = None,
    leads: Sequence[int] | None = None,
    max_cycles: int | None = None,
    client: BaseClient | None = None,
    clock: Callable[[], datetime] | None = None,
    on_cycle: Callable[[int, dict[str, FetchReport | str]], None] | None = None,
) -> int:
    """Fetch every source, then prune its layers, every ``interval_s`` seconds.

    One log line per cycle (``INFO``, or ``WARNING`` when something failed). A
    failed fetch or prune is logged and the loop goes on; it ends when
    ``stop_event`` is set or after ``max_cycles`` cycles, and returns the number
    of cycles run. ``since`` goes to observation sources, ``leads`` to model
    sources (each always takes the latest run). ``clock`` gives "now" (tests).
    ``on_cycle(cycle, results)`` sees each cycle's reports (or error lines).
    """
    if interval_s < 0:
        raise FetchError("the watch interval must not be negative")
    sources = [get_source(name) for name in source_names]  # unknown names fail now, not every cycle
    if not sources:
        raise FetchError("watch needs at least one source")
    stop_event = stop_event or threading.Event()
    cycle = 0
    while not stop_event.is_set() and (max_cycles is None or cycle < max_cycles):
        cycle += 1
        started = time.monotonic()
        results: dict[str, FetchReport | str] = {}
        parts: list[str] = []
        problems = False
        try:
            if client is None:
                client = make_client(settings)
        except Exception as exc:  # a bad endpoint URL, a broken botocore install
            results["client"] = _line(exc)
            parts.append(f"cannot make an S3 client: {_line(exc)}")
            problems = True
        else:
            for source in sources:
                options = FetchOptions(
                    now=clock() if clock else None, progress=False,
                    since=since if source.uses_since else None, leads=leads if source.uses_runs else None,
                )
                try:
                    report = fetch(source.name, store, settings, options, client=client)
                except Exception as exc:  # noqa: BLE001 - a cycle never kills the watch
                    results[source.name] = _line(exc)
                    parts.append(f"{source.name} failed: {_line(exc)}")
                    problems = True
                    continue
                results[source.name] = report
                problems = problems or not report.ok
                first = f" (first failure: {report.failures[0]})" if report.failures else ""
                parts.append(
                    f"{source.name} +{len(report.ingested)} ={len(report.skipped)} !{len(report.failures)} "
                    f"{report.bytes_downloaded / 1e6:.1f} MB{first}"
                )
        pruned = 0
        for layer_id in sorted({layer for source in sources for layer in source.layer_ids()}):
            try:
                pruned += len(store.prune(layer_id))
            except Exception as exc:  # noqa: BLE001
                parts.append(f"prune {layer_id} failed: {_line(exc)}")
                problems = True
        elapsed = time.monotonic() - started
        log.log(
            logging.WARNING if problems else logging.INFO,
            "watch cycle %d (%.1f s): %s; pruned %d",
            cycle, elapsed, "; ".join(parts), pruned,
        )
        if on_cycle is not None:
            on_cycle(cycle, results)
        if max_cycles is not None and cycle >= max_cycles:
            break
        stop_event.wait(max(0.0, interval_s - elapsed))
    return cycle


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
