"""Soak: a bounded load on loopback while ingest and prune run, for zero 5xx and flat memory.

Run by hand: ``.venv/bin/python benchmarks/soak.py [--minutes 10] [--connections 64]``.
Starts ``wxtiles serve`` on a store of synthetic radar frames, then for the given
time sends a mix of requests (observed tiles, nowcast tiles, layer metadata,
point and series queries, TileJSON) from ``--connections`` concurrent clients,
while a second process ingests a new frame and prunes every few seconds.
Reports requests, errors by status, p50/p99 and the server's resident memory
over time. Passes with zero 5xx and memory flat once the cache is full.
``run_soak`` is also used, briefly, by tests/test_soak.py.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import mercantile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import wxtiles_serving  # noqa: E402
from ingest.demo import samples, synthetic  # noqa: E402
from ingest.pipeline import ingest_file  # noqa: E402
from tileserver.core.layers import LAYERS  # noqa: E402
from tileserver.store.storage import open_storage  # noqa: E402
from tileserver.store import Retention, Store  # noqa: E402
from tileserver.core.timeutil import utcnow  # noqa: E402

RADAR = LAYERS["reflectivity"]


@dataclass
class SoakReport:
    requests: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    latencies_ms: list[float] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)
    ingests: int = 0
    ingest_errors: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def memory_growth_mb(self) -> float:
        """RSS growth over the second half of the run (after the cache warmed up)."""
        if len(self.rss_mb) < 4:
            return 0.0
        half = self.rss_mb[len(self.rss_mb) // 2 :]
        return max(m for _, m in half) - half[0][1]


def _rss_mb(pid: int) -> float:
    total = 0.0
    for candidate in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{candidate}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _frame_files(folder: Path, shape: tuple[int, int], count: int) -> list[Path]:
    start = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=5 * (count + 2))
    files = []
    for valid, dbz in synthetic.radar_sequence(start, steps=count, shape=shape):
        path = folder / samples.mrms_filename("MergedReflectivityQCComposite", "00.50", valid)
        samples.write_mrms_grib2(path, dbz, valid)
        files.append(path)
    return files


def _urls(rng: random.Random, latest: str, nowcast: str | None) -> str:
    kind = rng.random()
    tile = mercantile.tile(rng.uniform(-120, -75), rng.uniform(27, 48), rng.randint(3, 9))
    if kind < 0.45:
        return f"/tiles/reflectivity/{latest}/{tile.z}/{tile.x}/{tile.y}.png"
    if kind < 0.65 and nowcast:
        return f"/tiles/reflectivity/{nowcast}/{tile.z}/{tile.x}/{tile.y}.png"
    if kind < 0.75:
        return "/api/layers/reflectivity"
    if kind < 0.85:
        return f"/api/layers/reflectivity/point?lon={rng.uniform(-120, -75):.3f}&lat={rng.uniform(27, 48):.3f}"
    if kind < 0.95:
        return f"/api/layers/reflectivity/series?lon={rng.uniform(-120, -75):.3f}&lat={rng.uniform(27, 48):.3f}"
    return "/tiles/reflectivity/tilejson.json"


def run_soak(seconds: float, connections: int, shape: tuple[int, int] = (700, 1400), frames: int = 6,
             ingest_every_s: float = 5.0, cache_mb: int = 64) -> SoakReport:
    report = SoakReport()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = _frame_files(folder, shape, frames + int(seconds / ingest_every_s) + 2)
        store = Store(open_storage(str(folder / "store"), create=True), Retention(observed=timedelta(minutes=5 * frames)))
        for path in files[:frames]:
            ingest_file(store, path, RADAR)
        env = {"WXTILES_CACHE_MB": str(cache_mb), "WXTILES_CATALOG_TTL_S": "1"}
        stop = threading.Event()

        def ingest_loop() -> None:
            # Ingest and prune race the requests, as the CronJobs do in production.
            for path in files[frames:]:
                if stop.wait(ingest_every_s):
                    return
                try:
                    ingest_file(store, path, RADAR)
                    store.prune("reflectivity")
                    report.ingests += 1
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    report.ingest_errors.append(str(exc))

        ingester = threading.Thread(target=ingest_loop, daemon=True)
        with wxtiles_serving(store.storage.url, env) as (server, base):
            try:
                ingester.start()
                started = time.monotonic()

                async def client(seed: int) -> None:
                    rng = random.Random(seed)
                    info: dict = {}
                    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                        while time.monotonic() - started < seconds:
                            if not info or rng.random() < 0.05:  # follow new frames, as a viewer polls
                                info = (await http.get("/api/layers/reflectivity")).json()
                            nowcast = info["nowcast"][rng.randrange(len(info["nowcast"]))]["time"] if info.get("nowcast") else None
                            url = _urls(rng, info["latest"], nowcast)
                            began = time.perf_counter()
                            response = await http.get(url)
                            report.latencies_ms.append((time.perf_counter() - began) * 1000)
                            report.requests += 1
                            report.statuses[response.status_code] += 1

                async def sample_memory() -> None:
                    while time.monotonic() - started < seconds:
                        report.rss_mb.append((time.monotonic() - started, _rss_mb(server.pid)))
                        await asyncio.sleep(max(1.0, seconds / 60))

                async def main() -> None:
                    await asyncio.gather(sample_memory(), *(client(i) for i in range(connections)))

                asyncio.run(main())
            finally:
                stop.set()
                # An ingest still running would write into the folder being deleted below.
                if ingester.is_alive():
                    ingester.join()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--full-size", action="store_true", help="7000x3500 frames (slower ingest)")
    args = parser.parse_args()
    shape = (3500, 7000) if args.full_size else (700, 1400)
    report = run_soak(args.minutes * 60, args.connections, shape=shape)
    print(f"requests {report.requests} ({report.requests / (args.minutes * 60):.0f}/s), ingests+prunes {report.ingests}, ingest errors {len(report.ingest_errors)}")
    print("statuses " + ", ".join(f"{s}: {n}" for s, n in sorted(report.statuses.items())))
    print(f"latency p50 {report.percentile(0.5):.1f} ms, p99 {report.percentile(0.99):.1f} ms")
    print("resident memory (MB) over time: " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in report.rss_mb[:: max(1, len(report.rss_mb) // 12)]))
    verdict = "PASS" if report.server_errors == 0 and report.memory_growth_mb() < 50 else "FAIL"
    print(f"{verdict}: {report.server_errors} 5xx, memory growth over the second half {report.memory_growth_mb():.0f} MB")


if __name__ == "__main__":
    main()
