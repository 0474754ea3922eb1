"""Expensive requests render within a per-process budget: eight concurrent maximum-size
loops keep `wxtiles serve`'s resident memory bounded, and each gets 200 or 503.

Real MRMS precipitation frames (../shared/data/mrms-20190610) over the whole CONUS,
at the largest loop the limits allow (1600 x 900 px, 27 frames: 38.9 megapixels).
Without the budget, six such loops took one worker to 1.37 GB (benchmarks/README.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.servers import wxtiles_serving
from ingest.pipeline import ingest_file
from tileserver.layers import LAYERS
from tileserver.storage import open_storage
from tileserver.store import Store

MRMS = Path(__file__).resolve().parents[3] / "shared" / "data" / "mrms-20190610"
OBSERVED = 4
# 4 observed + 23 nowcast frames at the layer's 5-minute cadence = 27 frames of 1600 x 900.
LOOP = {"bbox": "-125,24,-66,50", "width": "1600", "frames": str(OBSERVED), "nowcast": "115", "outlines": "1"}
FORMATS = ("webp", "gif", "png")
CONCURRENT = 8
RSS_BOUND_MB = 512  # half the pod's 1 GiB limit; measured peak 310-360 MB with default caches


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    files = sorted(MRMS.glob("PrecipRate_00.00_*.grib2"))[-OBSERVED:]
    if len(files) < OBSERVED:
        pytest.skip(f"real MRMS files not found in {MRMS}")
    folder = tmp_path_factory.mktemp("budget")
    store = Store(open_storage(str(folder / "store"), create=True))
    for path in files:
        ingest_file(store, path, LAYERS["precip-rate"])
    with wxtiles_serving(store.storage.url, {"WXTILES_LOG_LEVEL": "warning"}) as (process, url):
        yield url, process.pid


def test_eight_maximum_loops_stay_within_the_memory_bound(server: tuple[str, int]) -> None:
    url, pid = server
    peak = rss_mb(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.02)

    answers: list[httpx.Response] = []

    def ask(index: int) -> None:
        # Distinct delays: distinct loops, none answered from another's cache entry.
        query = {**LOOP, "delay": str(100 + index)}
        answers.append(httpx.get(f"{url}/loops/precip-rate.{FORMATS[index % len(FORMATS)]}", params=query, timeout=300))

    sampler = threading.Thread(target=sample)
    sampler.start()
    clients = [threading.Thread(target=ask, args=(index,)) for index in range(CONCURRENT)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    done.set()
    sampler.join()

    statuses = sorted(answer.status_code for answer in answers)
    assert set(statuses) <= {200, 503}, statuses
    assert 200 in statuses, "the budget admits at least one maximum loop"
    for answer in answers:
        if answer.status_code == 200:
            assert answer.headers["x-loop-frames"] == "27"
            assert answer.headers["content-type"].startswith("image/")
        else:
            assert int(answer.headers["retry-after"]) >= 1
            assert "busy" in answer.json()["error"]
    assert peak < RSS_BOUND_MB, f"worker peaked at {peak:.0f} MB resident with {CONCURRENT} maximum loops: {statuses}"

