"""The wheel is the whole product: `python -m build`, install it outside the checkout,
and the installed `wxtiles` ingests a real MRMS file and serves the viewer, Leaflet
and tiles, with no checkout and no Node.

The new venv gets the wheel with --no-deps; its dependencies (numpy, GDAL via
rasterio, OpenCV...) come from the project venv through a path entry, so the test
installs nothing from the network. That still proves the wheel carries everything
of its own: the entry is a plain path, so the checkout's editable-install hook in
the project venv is never run, every command runs from a folder outside the
checkout, and the test asserts that tileserver, renderers, ingest, colormaps and
the viewer's files are all loaded from the new venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.servers import free_port, wait_ready
from tests.k8s.test_behind_traefik import PageAssets

ROOT = Path(__file__).resolve().parents[1]
MRMS_FILE = ROOT.parent / "shared" / "data" / "mrms-20190610" / "PrecipRate_00.00_20190610-011000.grib2"
PACKAGES = ("tileserver", "renderers", "ingest", "colormaps")
LEAFLET = ("vendor/leaflet/leaflet.js", "vendor/leaflet/leaflet.css", "vendor/leaflet/images/marker-icon.png")
UPLOT = ("vendor/uplot/uPlot.iife.min.js", "vendor/uplot/uPlot.min.css")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (ROOT / "frontend" / "node_modules" / "leaflet" / "dist" / "leaflet.js").is_file():
        pytest.fail("frontend/node_modules is missing: run `make setup` (npm ci) before building the wheel")
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (built,) = out.glob("wxtiles-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv outside the checkout with the wheel installed; returns its folder."""
    target = tmp_path_factory.mktemp("venv") / "wxtiles"
    venv.EnvBuilder(with_pip=True, symlinks=True).create(target)
    python = target / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # The project venv's packages (the dependencies) as a plain path entry: .pth files
    # there, such as the checkout's editable-install hook, are not processed.
    Path(site, "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without the project's settings, Python paths or venv."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("WXTILES_", "PYTHON", "VIRTUAL_ENV"))}
    return {**kept, **extra}


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*args], capture_output=True, text=True, timeout=300, cwd=cwd, env=environment(**env), check=False)


def test_the_wheel_holds_the_viewer_and_leaflet(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    viewer = "tileserver/viewer/"
    for page in ("index.html", "app.js", "style.css", "config.json", "outlines.json"):
        assert viewer + page in names, page
    for asset in ("leaflet.js", "leaflet.css", "images/marker-icon.png"):
        assert f"{viewer}node_modules/leaflet/dist/{asset}" in names, asset
    assert f"{viewer}node_modules/leaflet/LICENSE" in names
    for asset in ("uPlot.iife.min.js", "uPlot.min.css"):  # the point forecast chart
        assert f"{viewer}node_modules/uplot/dist/{asset}" in names, asset
    assert f"{viewer}node_modules/uplot/LICENSE" in names
    assert not [n for n in names if "/tools/" in n or n.endswith(("package.json", "package-lock.json"))], "build-time files only"


def test_every_package_of_the_tree_is_in_the_wheel(wheel: Path) -> None:
    """pyproject lists packages by name (the viewer is mapped in): a new one must be added there."""
    in_tree = {str(p.parent.relative_to(ROOT)) for name in PACKAGES for p in (ROOT / name).rglob("__init__.py")}
    in_wheel = {str(Path(n).parent) for n in zipfile.ZipFile(wheel).namelist() if n.endswith("__init__.py")}
    assert in_tree == in_wheel


@pytest.fixture(scope="module")
def served(installed: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The installed `wxtiles` ingests a real MRMS file and serves the store, from outside the checkout."""
    if not MRMS_FILE.is_file():
        pytest.skip(f"real MRMS file not found: {MRMS_FILE}")
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    store = elsewhere / "store"
    ingest = run(str(installed / "bin" / "wxtiles"), "ingest", str(MRMS_FILE), "--layer", "precip-rate", "--quiet",
                 cwd=elsewhere, WXTILES_STORE=str(store))
    assert ingest.returncode == 0, ingest.stderr
    port = free_port()
    process = subprocess.Popen(
        [str(installed / "bin" / "wxtiles"), "serve", "--port", str(port)], cwd=elsewhere,
        env=environment(WXTILES_STORE=str(store), WXTILES_LOG_LEVEL="warning"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/readyz", process, what="the installed wxtiles serve")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_everything_is_loaded_from_the_new_venv(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import json, tileserver.http.app as app, tileserver.service.loops as loops, ingest.pipeline, colormaps;"
        "print(json.dumps({'modules': [m.__file__ for m in (app, loops, ingest.pipeline, colormaps)],"
        " 'viewer': str(app.FRONTEND), 'outlines': str(loops.OUTLINES_PATH)}))"
    )
    done = run(str(installed / "bin" / "python"), "-c", probe, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    venv_root = installed.resolve()
    for path in [*found["modules"], found["viewer"], found["outlines"]]:
        assert Path(path).resolve().is_relative_to(venv_root), f"{path} is not from the installed wheel"
        assert not Path(path).resolve().is_relative_to(ROOT), path
    assert Path(found["outlines"]).is_file()


def test_the_installed_server_serves_the_viewer_leaflet_and_tiles(served: str, installed: Path) -> None:
    page = httpx.get(served + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    parser = PageAssets()
    parser.feed(page.text)
    assert set(LEAFLET[:2]) <= set(parser.urls), parser.urls
    for relative in {*parser.urls, *LEAFLET, *UPLOT}:
        response = httpx.get(f"{served}/{relative}")
        assert response.status_code == 200 and response.content, relative
    site = next(installed.glob("lib/python*/site-packages"))
    assert httpx.get(f"{served}/vendor/leaflet/leaflet.js").content == (site / "tileserver/viewer/node_modules/leaflet/dist/leaflet.js").read_bytes()
    layer = httpx.get(f"{served}/api/layers/precip-rate").json()
    assert layer["latest"] == "2019-06-10T01:10:00Z"
    tile = httpx.get(f"{served}/tiles/precip-rate/latest/4/3/6.png")
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
    assert tile.headers["x-frame-time"] == "2019-06-10T01:10:00Z"
    loop = httpx.get(f"{served}/loops/precip-rate.gif", params={"bbox": "-105,30,-85,45", "width": "200", "nowcast": "0", "outlines": "1"})
    assert loop.status_code == 200 and loop.content.startswith(b"GIF8")
