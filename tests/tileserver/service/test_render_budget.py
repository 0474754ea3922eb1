"""Expensive requests render within a per-process budget: eight concurrent maximum-size
loops keep `wxtiles serve`'s resident memory bounded, and each gets 200 or 503.

Real MRMS precipitation frames (../shared/data/mrms-20190610) over the whole CONUS,
at the largest loop the limits allow (1600 x 900 px, 27 frames: 38.9 megapixels),
formats mixed. Without the budget six such loops took one worker to 1.1-2.0 GB
(benchmarks/README.md, loop_memory.py, which this test drives).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.loop_memory import concurrent_loops, ingest_mrms
from benchmarks.servers import wxtiles_serving
from tileserver.store.storage import open_storage
from tileserver.store import Store

OBSERVED = 4
FORMATS = ["webp", "gif", "png"] * 2 + ["webp", "png"]  # eight loops
RSS_BOUND_MB = 512  # half the pod's 1 GiB limit; measured peaks 286-345 MB with default caches


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    store = Store(open_storage(str(tmp_path_factory.mktemp("budget") / "store"), create=True))
    try:
        ingest_mrms(store, OBSERVED)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with wxtiles_serving(store.storage.url, {"WXTILES_LOG_LEVEL": "warning"}) as (process, url):
        yield url, process.pid


def test_eight_maximum_loops_stay_within_the_memory_bound(server: tuple[str, int]) -> None:
    url, pid = server
    peak, answers = concurrent_loops(url, pid, FORMATS, OBSERVED)
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
    assert peak < RSS_BOUND_MB, f"worker peaked at {peak:.0f} MB resident with {len(FORMATS)} maximum loops: {statuses}"
    # An SRE sees the refusals and the budget in /metrics.
    metrics = {s.name: s.value for f in text_string_to_metric_families(httpx.get(f"{url}/metrics").text) for s in f.samples}
    assert metrics["wxtiles_renders_refused_total"] == statuses.count(503)
    assert metrics["wxtiles_render_budget_in_use_megapixels"] == 0
