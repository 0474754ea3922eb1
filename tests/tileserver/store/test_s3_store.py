"""The S3 store against a real S3 protocol server on loopback, including outages."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import mercantile
import pytest

from ingest.errors import IngestError
from ingest.pipeline import ingest_file
from tests.conftest import T0, LiveServer, minutes, radar_file
from tileserver.core.layers import LAYERS
from tileserver.core.settings import Settings
from tileserver.store.storage import StorageError, open_storage
from tileserver.store import Retention, Store

RADAR = LAYERS["reflectivity"]
TILES = [mercantile.tile(-100.0, 43.0, z) for z in (2, 4, 6, 9)] + [mercantile.tile(-80.0, 35.0, 5)]


def urls(time: str) -> list[str]:
    out = []
    for t in TILES:
        for suffix in (".png", "@2x.png", ".npy"):
            out.append(f"/tiles/reflectivity/{time}/{t.z}/{t.x}/{t.y}{suffix}")
    return out


def test_s3_tiles_are_byte_identical_to_local_and_across_replicas(s3_store_via_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    s3_url, _ = s3_store_via_proxy
    s3 = Store(open_storage(s3_url))
    local = Store(open_storage(str(tmp_path / "local"), create=True))
    for step in (0, 5):
        source = radar_file(tmp_path, T0 + minutes(step), shift_cols=step)
        assert ingest_file(s3, source, RADAR).frame.key == ingest_file(local, source, RADAR).frame.key
    assert [o.key for o in s3.storage.list("reflectivity/")] == [o.key for o in local.storage.list("reflectivity/")]
    with LiveServer(Settings(store=s3_url)) as a, LiveServer(Settings(store=s3_url)) as b, LiveServer(Settings(store=str(tmp_path / "local"))) as c:
        for url in urls("2026-11-27T21:05:00Z") + urls("latest"):
            bodies = [httpx.get(server.url + url, timeout=30) for server in (a, b, c)]
            assert all(r.status_code == 200 for r in bodies), url
            assert bodies[0].content == bodies[1].content == bodies[2].content, url
            assert bodies[0].headers["etag"] == bodies[1].headers["etag"] == bodies[2].headers["etag"]
        point = "/api/layers/reflectivity/point?lon=-100&lat=43"
        assert httpx.get(a.url + point).json() == httpx.get(c.url + point).json()


def test_new_frames_appear_within_the_catalog_ttl(s3_store_via_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    s3_url, _ = s3_store_via_proxy
    store = Store(open_storage(s3_url))
    ingest_file(store, radar_file(tmp_path, T0), RADAR)
    with LiveServer(Settings(store=s3_url, catalog_ttl_s=1.0)) as server:
        assert httpx.get(server.url + "/api/layers/reflectivity").json()["latest"] == "2026-11-27T21:00:00Z"
        ingest_file(store, radar_file(tmp_path, T0 + minutes(5), 5), RADAR)
        deadline = time.monotonic() + 5
        while httpx.get(server.url + "/api/layers/reflectivity").json()["latest"] != "2026-11-27T21:05:00Z":
            assert time.monotonic() < deadline, "new frame did not appear"
            time.sleep(0.2)


def test_retention_deletes_objects_on_s3(s3_store_via_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    s3_url, _ = s3_store_via_proxy
    store = Store(open_storage(s3_url), Retention(observed=minutes(7)))
    keys = [ingest_file(store, radar_file(tmp_path, T0 + minutes(m), m), RADAR).frame.key for m in (0, 5, 10)]
    removed = store.prune("reflectivity")
    assert [f.key for f in removed] == keys[:1]
    remaining = {o.key for o in store.storage.list("reflectivity/")}
    assert remaining == {key for frame in store.load_catalog("reflectivity").frames for key in frame.keys}
    assert {k for k in remaining if k.endswith("Z-" + k.rsplit("-", 1)[1]) and k.count(".") == 1} == set(keys[1:])


def test_concurrent_publishers_keep_every_entry(s3_store_via_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    from concurrent.futures import ThreadPoolExecutor

    s3_url, _ = s3_store_via_proxy
    store = Store(open_storage(s3_url))
    files = [radar_file(tmp_path, T0 + minutes(m), m) for m in range(0, 30, 5)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: ingest_file(store, p, RADAR), files))
    assert len(store.load_catalog("reflectivity").frames) == 6


def test_verification_on_s3_is_the_same_on_every_replica(s3_store_via_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    s3_url, _ = s3_store_via_proxy
    store = Store(open_storage(s3_url))
    for m in (0, 5, 10, 15):
        ingest_file(store, radar_file(tmp_path, T0 + minutes(m), m), RADAR)
    assert [c.lead_minutes for c in store.load_verification("reflectivity").cases] == [5, 5, 10]  # type: ignore[union-attr]
    with LiveServer(Settings(store=s3_url)) as a, LiveServer(Settings(store=s3_url)) as b:
        docs = [httpx.get(server.url + "/api/layers/reflectivity/verification").json() for server in (a, b)]
        assert docs[0] == docs[1] and docs[0]["cases"] == 3
        gauges = [sorted(line for line in httpx.get(server.url + "/metrics").text.splitlines() if line.startswith("wxtiles_nowcast_")) for server in (a, b)]
        assert gauges[0] == gauges[1] and any(line.startswith('wxtiles_nowcast_csi{layer="reflectivity",lead_minutes="10"') for line in gauges[0])


def wait_for_store(client: httpx.Client, status: str) -> dict:
    """/readyz stays 200 throughout; its body follows the store's health."""
    deadline = time.monotonic() + 30
    while True:
        response = client.get("/readyz")
        assert response.status_code == 200, response.text
        if response.json()["store"]["status"] == status:
            return response.json()
        assert time.monotonic() < deadline, f"store never reported {status}: {response.text}"
        time.sleep(0.2)


def test_store_outage_degrades_a_ready_pod_without_taking_it_out(s3_store_via_proxy, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: ANN001
    s3_url, proxy = s3_store_via_proxy
    store = Store(open_storage(s3_url))
    ingest_file(store, radar_file(tmp_path, T0), RADAR)
    ingest_file(store, radar_file(tmp_path, T0 + minutes(5), 5), RADAR)
    cached = "/tiles/reflectivity/2026-11-27T21:00:00Z/4/3/5.png"
    with LiveServer(Settings(store=s3_url, catalog_ttl_s=0.0)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get(cached).status_code == 200
        assert wait_for_store(client, "up")["status"] == "ready"
        caplog.clear()
        proxy.stop()
        started = time.monotonic()
        down = wait_for_store(client, "down")
        assert down["status"] == "ready" and down["store"]["error"]
        assert client.get("/healthz").status_code == 200
        # Already rendered, and the catalogs in memory: still served.
        assert client.get(cached).status_code == 200
        layer = client.get("/api/layers/reflectivity")
        assert layer.status_code == 200 and layer.json()["latest"] == "2026-11-27T21:05:00Z"
        for url in urls("2026-11-27T21:05:00Z")[:4] + ["/api/layers/reflectivity/point?lon=-100&lat=43"]:
            response = client.get(url)
            assert response.status_code == 503, (url, response.status_code, response.text)
            assert response.json()["error"] and int(response.headers["retry-after"]) > 0
        assert "wxtiles_store_up 0.0" in client.get("/metrics").text
        assert time.monotonic() - started < 45  # bounded: no hung workers
        proxy.start()
        wait_for_store(client, "up")
        for url in urls("2026-11-27T21:05:00Z"):
            assert client.get(url).status_code == 200, url
        assert "wxtiles_store_up 1.0" in client.get("/metrics").text
    changes = [r.getMessage() for r in caplog.records if r.name == "tileserver.service.health"]
    assert len(changes) == 2 and changes[0].startswith("store down: ") and changes[1].startswith("store up again after")


def test_a_pod_that_never_reached_its_store_is_not_ready(s3_store_via_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    s3_url, proxy = s3_store_via_proxy
    ingest_file(Store(open_storage(s3_url)), radar_file(tmp_path, T0), RADAR)
    proxy.stop()
    with LiveServer(Settings(store=s3_url, catalog_ttl_s=0.0)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json()["store"]["status"] == "down", response.text
        assert "unreachable" in response.json()["detail"]
        tile = client.get("/tiles/reflectivity/latest/4/3/5.png")
        assert tile.status_code == 503 and int(tile.headers["retry-after"]) > 0
        proxy.start()
        response = client.get("/readyz")
        assert response.status_code == 200 and response.json()["store"]["status"] == "up", response.text
        assert client.get("/tiles/reflectivity/latest/4/3/5.png").status_code == 200


def test_slow_store_times_out_with_503(s3_store_via_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    s3_url, proxy = s3_store_via_proxy
    store = Store(open_storage(s3_url))
    ingest_file(store, radar_file(tmp_path, T0), RADAR)
    with LiveServer(Settings(store=s3_url, catalog_ttl_s=3600.0)) as server, httpx.Client(base_url=server.url, timeout=120) as client:
        assert client.get("/api/layers/reflectivity").status_code == 200  # catalog cached
        proxy.delay_s = 30.0
        started = time.monotonic()
        response = client.get("/tiles/reflectivity/latest/6/14/23.png")
        elapsed = time.monotonic() - started
        assert response.status_code in (502, 503) and "error" in response.json()
        assert elapsed < 40


def test_ingest_during_outage_fails_cleanly(s3_store_via_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    s3_url, proxy = s3_store_via_proxy
    store = Store(open_storage(s3_url))
    first = ingest_file(store, radar_file(tmp_path, T0), RADAR).frame
    proxy.stop()
    with pytest.raises(IngestError, match="unreachable"):
        ingest_file(store, radar_file(tmp_path, T0 + minutes(5), 5), RADAR)
    proxy.start()
    catalog = store.load_catalog("reflectivity")
    assert [f.key for f in catalog.frames] == [first.key]
    assert store.storage.exists(first.key)


def test_missing_bucket_is_one_clear_message(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    storage = open_storage("s3://no-such-bucket-here/frames")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist"):
        storage.check()


def test_every_process_on_an_s3_store_bounds_gdal_reads(s3_server: str) -> None:
    """Not only the server: ingest reads earlier frames through /vsis3/ for motion, and a
    stalled store must fail that job rather than hang it."""
    import os
    import subprocess
    import sys

    script = (
        "import os; from tileserver.store.storage import open_storage; open_storage('s3://any-bucket/x'); "
        "print(os.environ.get('GDAL_HTTP_TIMEOUT'), os.environ.get('GDAL_HTTP_CONNECTTIMEOUT'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GDAL_", "CPL_"))}
    env["AWS_ENDPOINT_URL"] = s3_server
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    timeout, connect = done.stdout.split()
    assert 0 < float(timeout) <= 30 and 0 < float(connect) <= 10


def test_unchanged_catalog_costs_a_conditional_read(s3_store_via_proxy, tmp_path: Path) -> None:  # noqa: ANN001
    s3_url, _ = s3_store_via_proxy
    store = Store(open_storage(s3_url))
    ingest_file(store, radar_file(tmp_path, T0), RADAR)
    raw, version = store.storage.read_if_changed("catalog/reflectivity.json", None)
    assert raw == store.storage.read_bytes("catalog/reflectivity.json")
    assert store.storage.read_if_changed("catalog/reflectivity.json", version) is None
    ingest_file(store, radar_file(tmp_path, T0 + minutes(5), 5), RADAR)
    changed = store.storage.read_if_changed("catalog/reflectivity.json", version)
    assert changed is not None and changed[1] != version and len(changed[0]) > len(raw)
