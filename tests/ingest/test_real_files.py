"""Real files from weather services, served with the values their own readers give.

Every file in ../shared/data/grids and a real MRMS frame is ingested into the
layer it belongs to through the command line, served by a real server, and
sampled through `/point` and `.npy` tiles against its truth (see
tests/ingest/fidelity.py): at least 99 % of sampled valid cells within the
layer's storage step, no holes and no values where the source has none.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import free_port
from tests.ingest.fidelity import measure
from tests.ingest.real_cases import CASES, DATA, GFS_25, REDUCED, Case
from tests.tileserver.core.test_layers import MSLP

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not beside the project")


def wxtiles(*args: str, store: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "WXTILES_STORE": str(store), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tileserver.cli", *args], capture_output=True, text=True, env=environ, timeout=600)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_real_file_is_served_as_its_source_reads(case: Case, tmp_path: Path, live_server_for) -> None:
    store = tmp_path / "store"
    done = wxtiles("ingest", case.path, "--layer", case.layer, "--quiet", *case.args, store=store)
    assert done.returncode == 0, done.stderr
    # Library warnings a user cannot act on stay out of the output.
    assert done.stderr == "", done.stderr
    server = live_server_for(str(store))
    result = measure(case, server.url)
    assert result.points >= 100, result
    assert result.fraction >= 0.99, (result.fraction, result.max_error, result)
    assert result.holes == 0 and result.spurious == 0, result
    assert result.tile_mismatches == 0, result


def test_reduced_gaussian_grid_is_refused_in_one_line(tmp_path: Path) -> None:
    done = wxtiles("ingest", str(REDUCED), "--layer", "wind-speed-10m", "--quiet", store=tmp_path / "store")
    assert done.returncode == 1
    line = done.stderr.splitlines()[0]
    assert "reduced Gaussian grid" in line and "regrid" in line
    assert "Traceback" not in done.stderr
    assert not list((tmp_path / "store").glob("wind-speed-10m/**/*.tif"))


def test_a_layers_file_alone_serves_sea_level_pressure(tmp_path: Path) -> None:
    """The issue's example file, nothing else: ingest GFS PRMSL (Pa), serve hPa, draw a tile and a legend."""
    layers = tmp_path / "layers.toml"
    layers.write_text(MSLP)
    env = {"WXTILES_LAYERS": str(layers)}
    store = tmp_path / "store"
    done = wxtiles("ingest", str(GFS_25), "--layer", "mslp", "--quiet", store=store, env=env)
    assert done.returncode == 0, done.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tileserver.cli", "serve", "--port", str(port)],
        env={**os.environ, "WXTILES_STORE": str(store), **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait(base)
        info = httpx.get(f"{base}/api/layers/mslp").json()
        assert info["units"] == "hPa" and info["title"] == "Mean sea-level pressure"
        time = info["latest"]
        # Over the open North Atlantic in January, pressure at sea level is 960 to 1045 hPa.
        point = httpx.get(f"{base}/api/layers/mslp/point", params={"lon": -30, "lat": 45, "time": time}).json()
        assert 960 < point["value"] < 1045, point
        tile = httpx.get(f"{base}/tiles/mslp/{time}/2/1/1.npy")
        values = np.load(io.BytesIO(tile.content))
        assert np.nanmin(values) > 940 and np.nanmax(values) < 1070
        png = httpx.get(f"{base}/tiles/mslp/{time}/2/1/1.png")
        assert png.status_code == 200 and png.headers["content-type"] == "image/png" and len(png.content) > 200
        legend = httpx.get(f"{base}/api/colormaps/viridis/legend.png", params={"layer": "mslp"})
        assert legend.status_code == 200 and legend.content[:4] == b"\x89PNG"
        assert "mslp" in httpx.get(f"{base}/api/layers").text
        assert "mslp" in httpx.get(f"{base}/wmts/1.0.0/WMTSCapabilities.xml").text
        assert "mslp" in httpx.get(f"{base}/openapi.json").text
        tilejson = httpx.get(f"{base}/tiles/mslp/tilejson.json").json()
        assert tilejson["tiles"][0].startswith(f"{base}/tiles/mslp/") and tilejson["name"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait(base: str) -> None:
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")
