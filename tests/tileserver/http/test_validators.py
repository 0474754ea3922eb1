"""Validators everywhere: ETags that follow definitions, and layer listings with ETags, 304s and ?hours=."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

import colormaps
from ingest.pipeline import ingest_file
from tests.conftest import T0, free_port, minutes, radar_file, write_latlon_geotiff
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Store

ROOT = Path(__file__).resolve().parents[3]
RADAR = LAYERS["reflectivity"]
TILE = "/tiles/reflectivity/2026-11-27T21:00:00Z/4/3/5.png"
LOOP = "/loops/reflectivity.webp?bbox=-110,35,-90,48&width=300&frames=2&nowcast=0"


@contextmanager
def serving(store: str, colormaps_from: Path) -> Iterator[str]:
    """`wxtiles serve` in its own process, importing the colormaps package found in ``colormaps_from``."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{colormaps_from}{os.pathsep}{ROOT}", "WXTILES_STORE": store, "WXTILES_LOG_LEVEL": "warning"}
    # Run from the copy's folder: `python -m` puts the working directory first on sys.path.
    process = subprocess.Popen([sys.executable, "-m", "tileserver.cli", "serve", "--port", str(port)], cwd=colormaps_from, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "wxtiles serve exited"
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_editing_a_colormap_file_changes_tile_and_loop_etags(tmp_path: Path) -> None:
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    for step in (0, 5):
        ingest_file(store, radar_file(tmp_path, T0 + minutes(step), step), RADAR)
    shipped, edited = tmp_path / "shipped", tmp_path / "edited"
    for copy in (shipped, edited):
        shutil.copytree(Path(colormaps.__file__).parent, copy / "colormaps")
    definition = edited / "colormaps" / "data" / "nws-reflectivity.json"
    definition.write_text(definition.read_text().replace('"#fd0000"', '"#ff2020"'))  # 50 dBZ a little lighter
    answers = {}
    for name, folder in (("shipped", shipped), ("edited", edited)):
        with serving(store.storage.url, folder) as url:
            answers[name] = [httpx.get(url + path, timeout=60) for path in (TILE, LOOP, TILE.replace(".png", ".npy"))]
    for response in answers["shipped"] + answers["edited"]:
        assert response.status_code == 200, response.text
    tile, loop, raw = answers["shipped"]
    assert answers["edited"][0].headers["etag"] != tile.headers["etag"]
    assert answers["edited"][1].headers["etag"] != loop.headers["etag"]
    # Raw values have no colours: their ETag stays.
    assert answers["edited"][2].headers["etag"] == raw.headers["etag"]
    # The same definitions give the same ETags as this process's server (replicas agree).
    assert tile.headers["etag"] == _etag_here(store, TILE)


def _etag_here(store: Store, path: str) -> str:
    from tests.conftest import LiveServer
    from tileserver.core.settings import Settings

    with LiveServer(Settings(store=store.storage.url)) as live:
        return httpx.get(live.url + path, timeout=60).headers["etag"]


@pytest.fixture
def observed(tmp_path: Path) -> Store:
    """Reflectivity every 30 minutes, 21:00 to 22:30."""
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    for step in range(4):
        ingest_file(store, radar_file(tmp_path, T0 + minutes(30 * step), step), RADAR)
    return store


@pytest.mark.parametrize("path", ["/api/layers", "/api/layers/reflectivity"])
def test_layer_listings_have_etags_304s_and_a_short_max_age(observed: Store, tmp_path: Path, live_server_for, path: str) -> None:  # noqa: ANN001
    server = live_server_for(observed.storage.url)
    with httpx.Client(base_url=server.url) as client:
        first = client.get(path)
        assert first.status_code == 200 and first.headers["cache-control"] == "public, max-age=10"
        etag = first.headers["etag"]
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        assert client.get(path, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
        ingest_file(observed, radar_file(tmp_path, T0 + minutes(120), 4), RADAR)
        changed = client.get(path, headers={"If-None-Match": etag})
        assert changed.status_code == 200 and changed.headers["etag"] != etag
        assert "2026-11-27T23:00:00Z" in changed.text


def test_hours_keeps_the_recent_frames_of_an_observed_layer(observed: Store, live_server_for) -> None:  # noqa: ANN001
    server = live_server_for(observed.storage.url)
    with httpx.Client(base_url=server.url) as client:
        every = client.get("/api/layers/reflectivity").json()
        assert every["frames"] == ["2026-11-27T21:00:00Z", "2026-11-27T21:30:00Z", "2026-11-27T22:00:00Z", "2026-11-27T22:30:00Z"]
        recent = client.get("/api/layers/reflectivity?hours=1").json()
        assert recent["frames"] == every["frames"][1:]
        assert client.get("/api/layers/reflectivity?hours=0.25").json()["frames"] == every["frames"][-1:]
        assert {k: v for k, v in recent.items() if k != "frames"} == {k: v for k, v in every.items() if k != "frames"}
        listed = client.get("/api/layers?hours=1").json()["layers"]
        assert next(layer for layer in listed if layer["id"] == "reflectivity")["frames"] == recent["frames"]
        # A different window is a different document.
        assert client.get("/api/layers/reflectivity?hours=1").headers["etag"] != client.get("/api/layers/reflectivity").headers["etag"]


def test_hours_keeps_the_recent_runs_of_a_forecast_layer(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    source = write_latlon_geotiff(tmp_path / "t2m.tif", np.full((50, 60), 12.5, np.float32), -105.0, 45.0, 0.1)
    layer = LAYERS["temperature-2m"]
    for run in (T0 - timedelta(hours=6), T0):
        for lead in (0, 1, 2):
            ingest_file(store, source, layer, time=run + timedelta(hours=lead), run=run)
    server = live_server_for(store.storage.url)
    with httpx.Client(base_url=server.url) as client:
        every = client.get("/api/layers/temperature-2m").json()
        assert [r["run"] for r in every["runs"]] == ["2026-11-27T15:00:00Z", "2026-11-27T21:00:00Z"]
        assert len(every["frames"]) == 6
        recent = client.get("/api/layers/temperature-2m?hours=1").json()
        assert [r["run"] for r in recent["runs"]] == ["2026-11-27T21:00:00Z"]
        assert recent["frames"] == ["2026-11-27T21:00:00Z", "2026-11-27T22:00:00Z", "2026-11-27T23:00:00Z"]
        assert len(client.get("/api/layers/temperature-2m?hours=6").json()["runs"]) == 2


@pytest.mark.parametrize("value", ["", "two", "0", "-1", "nan", "inf", "1e9", "0x10"])
def test_bad_hours_are_400_with_a_json_error(observed: Store, live_server_for, value: str) -> None:  # noqa: ANN001
    server = live_server_for(observed.storage.url)
    for path in ("/api/layers", "/api/layers/reflectivity"):
        response = httpx.get(f"{server.url}{path}?hours={value}")
        assert response.status_code == 400 and "hours" in response.json()["error"], (value, response.text)
