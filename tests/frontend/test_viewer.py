"""The viewer in a real headless Chromium against the real app on loopback.

Chromium comes from Debian (``make setup`` installs it); ``playwright install``
is not used. The store is small but real: four synthetic radar frames 5 minutes
apart, ingested through the real pipeline (so motion fields and nowcast frames
exist), and two HRRR-style model frames. The OSM basemap is unreachable on
purpose (its requests are aborted): the radar must still show, over the offline
outlines, and the page must log no errors of its own.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response, Route, sync_playwright

from ingest.demo import samples, synthetic
from ingest.pipeline import ingest_file
from tests.conftest import T0, LiveServer, minutes, write_latlon_geotiff
from tileserver.core.layers import LAYERS
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
README_SCREENSHOT = ROOT / "docs" / "viewer.png"
README_CHART = ROOT / "docs" / "chart.png"
BASEMAP_HOST = "tile.openstreetmap.org"

RES = 0.1  # degrees: a coarse MRMS-like grid over the MRMS CONUS domain
SHAPE = (350, 700)
HORIZON_MIN = 30  # nowcast frames up to 30 minutes ahead: 6 frames


def iso(t: datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%SZ}"


OBSERVED = [iso(T0 + minutes(5 * i)) for i in range(4)]
LATEST = OBSERVED[-1]
NOWCAST = [iso(T0 + minutes(15 + 5 * k)) for k in range(1, HORIZON_MIN // 5 + 1)]
LOOP = OBSERVED + NOWCAST
RUN = T0 - timedelta(hours=3)
MODEL = [iso(RUN + timedelta(hours=lead)) for lead in (2, 3)]
# The model layers the point chart draws: two HRRR runs an hour apart (temperature and wind), one GFS run.
HRRR_RUNS = [RUN - timedelta(hours=1), RUN]
HRRR_LEADS = (0, 1, 2, 3)
GFS_RUN = RUN - timedelta(hours=6)
GFS_LEADS = (3, 6, 9, 12)
HRRR_SHAPE = (260, 600)  # 3 km cells: wide enough to reach the echoes of the synthetic radar over Illinois
TILE = re.compile(r"/tiles/([^/]+)/([^/]+)/(\d+)/(\d+)/(\d+)(@2x)?\.png$")


def radar_frames(count: int) -> list[tuple[datetime, np.ndarray]]:
    return list(synthetic.radar_sequence(T0, steps=count, step=minutes(5), shape=SHAPE))


def ingest_radar(store: Store, folder: Path, when: datetime, dbz: np.ndarray) -> None:
    path = write_latlon_geotiff(folder / f"radar-{when:%H%M}.tif", dbz, -130.0, 55.0, RES)
    ingest_file(store, path, LAYERS["reflectivity"], time=when)


def start_server(folder: Path) -> LiveServer:
    return LiveServer(Settings(store=str(folder / "store"), catalog_ttl_s=0.0, nowcast_horizon_min=HORIZON_MIN))


@dataclass(frozen=True)
class Site:
    url: str
    storm: tuple[float, float]  # lat, lon of the strongest echo of the latest frame
    chart_point: tuple[float, float]  # lat, lon of an echo inside the HRRR and GFS grids


def build_store(folder: Path) -> None:
    store = Store(open_storage(str(folder / "store"), create=True))
    frames = radar_frames(len(OBSERVED))
    for when, dbz in frames:
        ingest_radar(store, folder, when, dbz)
    for lead in (2, 3):
        path = folder / f"hrrr.t{RUN:%H}z.wrfsfcf{lead:02d}.grib2"
        samples.write_hrrr_grib2(path, RUN, timedelta(hours=lead), shape=(200, 300))
        ingest_file(store, path, LAYERS["temperature-2m"])
    for seed, run in enumerate(HRRR_RUNS):
        for lead in HRRR_LEADS:
            path = folder / f"hrrr.{run:%Y%m%d}.t{run:%H}z.wrfsfcf{lead:02d}.grib2"
            samples.write_hrrr_grib2(path, run, timedelta(hours=lead), shape=HRRR_SHAPE, seed=seed)
            for layer in ("hrrr-temperature-2m", "hrrr-wind-speed-10m"):
                ingest_file(store, path, LAYERS[layer])
    for lead in GFS_LEADS:
        path = folder / f"gfs.t{GFS_RUN:%H}z.pgrb2.1p00.f{lead:03d}"
        samples.write_gfs_grib2(path, GFS_RUN, timedelta(hours=lead), shape=(181, 360))
        for layer in ("gfs-temperature-2m", "gfs-wind-speed-10m"):
            ingest_file(store, path, LAYERS[layer])
    latest = frames[-1][1]
    row, col = np.unravel_index(np.argmax(latest), latest.shape)
    storm = (55.0 - (row + 0.5) * RES, -130.0 + (col + 0.5) * RES)
    (folder / "storm.json").write_text(json.dumps(storm))
    # The point chart's point: the strongest echo inside the HRRR grid (36-41 N, 97-82 W).
    top, left = round((55.0 - 41.0) / RES), round((-97.0 + 130.0) / RES)
    window = latest[top : round((55.0 - 36.0) / RES), left : round((-82.0 + 130.0) / RES)]
    row, col = np.unravel_index(np.argmax(window), window.shape)
    point = (55.0 - (top + row + 0.5) * RES, -130.0 + (left + col + 0.5) * RES)
    (folder / "chart-point.json").write_text(json.dumps(point))


def shared_folder(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A folder built once per test run: the xdist workers of one run share it (they only read it)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = factory.mktemp(name)
        build(folder)
        return folder
    root = factory.getbasetemp().parent  # this run's folder, above each worker's own
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / "complete").touch()
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = shared_folder(tmp_path_factory, "viewer-store", build_store)
    lat, lon = json.loads((folder / "storm.json").read_text())
    chart_lat, chart_lon = json.loads((folder / "chart-point.json").read_text())
    with start_server(folder) as live:
        yield Site(live.url, (lat, lon), (chart_lat, chart_lon))


@pytest.fixture(scope="module")
def api(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make setup` (installs Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# Every frame the viewer shows, with the state of its tiles at that moment.
RECORD_FRAMES = """
window.__frames = [];
document.addEventListener('wxtiles:frame', (event) => {
  const {layer, time} = event.detail;
  const shown = [...document.querySelectorAll('.leaflet-radar-pane .wx-shown')];
  const imgs = shown.flatMap((el) => [...el.querySelectorAll('img.leaflet-tile')]);
  window.__frames.push({
    layer, time,
    shownLayers: shown.map((el) => el.dataset.time),
    tiles: imgs.length,
    loaded: imgs.filter((img) => img.classList.contains('leaflet-tile-loaded') && img.complete && img.naturalWidth > 0).length,
    label: document.getElementById('time-label').dateTime,
  });
});
"""


@dataclass
class Viewer:
    page: Page
    context: BrowserContext
    errors: list[str] = field(default_factory=list)  # console errors, page errors, failed local requests
    responses: list[Response] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # basemap requests aborted on purpose
    unexpected: list[str] = field(default_factory=list)  # any other non-loopback request

    def tiles(self, layer: str = "reflectivity", time: str | None = None) -> list[Response]:
        found = []
        for response in self.responses:
            m = TILE.search(urlsplit(response.url).path)
            if m and m.group(1) == layer and (time is None or m.group(2) == time):
                found.append(response)
        return found

    def tile_times(self, layer: str = "reflectivity") -> set[str]:
        return {TILE.search(urlsplit(r.url).path).group(2) for r in self.tiles(layer)}  # type: ignore[union-attr]

    def wait_for_frame(self, time: str, layer: str = "reflectivity") -> None:
        """Until the frame is the visible one, with every tile of the view loaded."""
        self.page.wait_for_function(
            """([layer, time]) => {
                 const shown = document.querySelector('.leaflet-radar-pane .wx-shown');
                 if (!shown || shown.dataset.layer !== layer || shown.dataset.time !== time) return false;
                 const imgs = [...shown.querySelectorAll('img.leaflet-tile')];
                 return imgs.length > 0 && imgs.every((img) => img.classList.contains('leaflet-tile-loaded'));
               }""",
            arg=[layer, time],
        )

    def label(self) -> str:
        return self.page.locator("#time-label").inner_text().replace("\u202f", " ")

    def shown_time(self) -> str | None:
        return self.page.locator("#time-label").get_attribute("datetime")

    def frames_seen(self) -> list[dict]:
        return self.page.evaluate("() => window.__frames")  # type: ignore[no-any-return]

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.unexpected == []
        assert self.blocked, "the basemap was never requested, so the unreachable-basemap case was not exercised"


def open_viewer(
    browser: Browser,
    url: str,
    fragment: str = "",
    *,
    wait_for: tuple[str, str] | None = ("reflectivity", LATEST),
    routes: dict[str, Callable[[Route], None]] | None = None,
    **context_options: object,
) -> Viewer:
    options = {"locale": "en-US", "timezone_id": "UTC", "viewport": {"width": 1280, "height": 800}, **context_options}
    context = browser.new_context(**options)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(15_000)
    viewer = Viewer(page, context)
    local = urlsplit(url).netloc

    def outside(route: Route) -> None:
        netloc = urlsplit(route.request.url).netloc
        (viewer.blocked if netloc == BASEMAP_HOST else viewer.unexpected).append(route.request.url)
        route.abort()

    def console(message: ConsoleMessage) -> None:
        # Chromium itself logs "Failed to load resource" for each aborted basemap
        # tile, attributed to the tile URL; the page logs nothing for it.
        if message.type == "error" and urlsplit(message.location.get("url", "")).netloc != BASEMAP_HOST:
            viewer.errors.append(f"console: {message.text} at {message.location}")

    def failed(request: Request) -> None:
        # ERR_ABORTED is Leaflet cancelling tiles it no longer needs (zoom change, frame dropped).
        if urlsplit(request.url).netloc == local and request.failure != "net::ERR_ABORTED":
            viewer.errors.append(f"request failed: {request.url} {request.failure}")

    # Only what leaves the loopback server goes through Python (and is aborted).
    page.route(re.compile(rf"^(?!{re.escape(url)}/)"), outside)
    for path, handler in (routes or {}).items():
        page.route(url + path, handler)
    page.on("console", console)
    page.on("pageerror", lambda error: viewer.errors.append(f"pageerror: {error}"))
    page.on("requestfailed", failed)
    page.on("response", lambda response: viewer.responses.append(response))
    page.add_init_script(RECORD_FRAMES)
    page.goto(url + "/" + fragment)
    if wait_for:
        viewer.wait_for_frame(wait_for[1], wait_for[0])
    return viewer


@pytest.fixture
def viewer(browser: Browser, site: Site) -> Iterator[Viewer]:
    viewer = open_viewer(browser, site.url)
    yield viewer
    viewer.context.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


# ---------------------------------------------------------------------------


def test_store_has_observed_and_nowcast_frames(api: httpx.Client) -> None:
    info = api.get("/api/layers/reflectivity").json()
    assert info["frames"] == OBSERVED
    assert info["nowcast"] == [{"time": t, "lead_minutes": 5 * (k + 1)} for k, t in enumerate(NOWCAST)]
    model = api.get("/api/layers/temperature-2m").json()
    assert model["kind"] == "forecast" and model["frames"] == MODEL


def test_page_loads_the_latest_frame_without_errors(viewer: Viewer, api: httpx.Client) -> None:
    page = viewer.page
    tiles = viewer.tiles(time=LATEST)
    assert tiles, "no radar tile was requested for the latest frame"
    assert {r.status for r in tiles} == {200}
    assert {r.headers["content-type"] for r in tiles} == {"image/png"}
    assert [r.url for r in viewer.responses if r.status >= 400] == []
    # Frames are only loaded near the one on screen: the one before, the one after (the first nowcast).
    assert viewer.tile_times() <= {OBSERVED[-2], LATEST, NOWCAST[0]}
    # The view is fitted to the layer's coverage at once: every radar tile is at one zoom.
    zoom = page.evaluate("() => window.wxtilesMap.getZoom()")
    assert zoom in (3, 4)
    assert {int(TILE.search(urlsplit(r.url).path).group(3)) for r in viewer.tiles()} == {zoom}  # type: ignore[union-attr]
    assert viewer.shown_time() == LATEST
    assert viewer.label() == "Nov 27, 9:15 PM UTC"
    assert page.locator("#frame-kind").inner_text() == "Observed"
    assert page.locator("#frame-count").inner_text() == f"{len(OBSERVED)}/{len(LOOP)}"
    assert page.locator("#status").inner_text() == ""
    # The first frame was shown only once all its tiles had loaded.
    [first] = viewer.frames_seen()
    assert first["time"] == LATEST and first["tiles"] > 0 and first["loaded"] == first["tiles"]
    viewer.assert_clean()


def test_unreachable_basemap_falls_back_to_outlines(viewer: Viewer) -> None:
    page = viewer.page
    assert all(urlsplit(url).netloc == BASEMAP_HOST for url in viewer.blocked)
    assert "no-basemap" in (page.locator("#map").get_attribute("class") or "")
    # The coastline and border outlines are drawn (a canvas with dark pixels) over the radar.
    page.wait_for_function(
        """() => {
             const canvas = document.querySelector('.leaflet-outlines-pane canvas');
             if (!canvas || !canvas.width) return false;
             const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
             let ink = 0;
             for (let i = 3; i < data.length; i += 4) if (data[i] > 0) ink += 1;
             return ink > 1000;
           }"""
    )
    assert page.locator(".leaflet-control-attribution").inner_text().count("Natural Earth") == 1
    # The basemap is a setting: "Outlines only" drops it, and the link says so.
    assert page.locator(".leaflet-tile-pane .wx-basemap").count() == 1
    page.get_by_label("Basemap").select_option("none")
    assert page.locator(".leaflet-tile-pane .wx-basemap").count() == 0
    page.wait_for_function("() => location.hash.includes('basemap=none')")
    assert page.locator(".leaflet-outlines-pane canvas").count() == 1
    viewer.wait_for_frame(LATEST)
    viewer.assert_clean()


def test_layer_select_lists_the_api_layers(viewer: Viewer, api: httpx.Client) -> None:
    layers = api.get("/api/layers").json()["layers"]
    select = viewer.page.locator("#layer-select")
    options = select.locator("option").evaluate_all("(opts) => opts.map((o) => [o.value, o.textContent])")
    assert options == [[layer["id"], layer["title"]] for layer in layers]
    assert len(options) == len(LAYERS)
    # Model layers are grouped by model; observations and hand-ingested layers stand first.
    groups = select.locator("optgroup").evaluate_all("(gs) => gs.map((g) => [g.label, [...g.children].map((o) => o.value)])")
    assert groups == [
        [model.upper(), [layer["id"] for layer in layers if layer["model"] == model]]
        for model in dict.fromkeys(layer["model"] for layer in layers if layer["model"])
    ]
    assert [g[0] for g in groups] == ["HRRR", "GFS"]
    assert select.is_enabled()
    assert select.input_value() == "reflectivity"
    assert viewer.page.get_by_label("Layer", exact=True).input_value() == "reflectivity"
    viewer.assert_clean()


def test_play_loads_successive_frames_and_advances_the_label(viewer: Viewer) -> None:
    page = viewer.page
    page.locator("#speed").select_option("4")
    play = page.get_by_role("button", name="Play")
    play.click()
    assert page.locator("#play").get_attribute("aria-label") == "Pause"
    # From the latest observation on: the nowcast, then round to the oldest frame and on.
    wanted = len(LOOP) + 2
    page.wait_for_function(f"() => window.__frames.length >= {wanted}")
    page.get_by_role("button", name="Pause").click()
    seen = viewer.frames_seen()
    times = [f["time"] for f in seen]
    start = LOOP.index(LATEST)
    assert times[:wanted] == [LOOP[(start + k) % len(LOOP)] for k in range(wanted)]
    for frame in seen:
        # The label moved with the map, and each frame appeared only once all its tiles had loaded.
        assert frame["label"] == frame["time"]
        assert frame["shownLayers"] == [frame["time"]]
        assert frame["tiles"] > 0 and frame["loaded"] == frame["tiles"], frame
    # Tiles were asked for every frame time of the loop, and all came back.
    assert viewer.tile_times() >= set(LOOP)
    assert {r.status for r in viewer.tiles()} == {200}
    # A nowcast tile URL names the observation it starts from, so a newer one never hits a stale cache.
    nowcast = [r for t in NOWCAST for r in viewer.tiles(time=t)]
    assert nowcast and {urlsplit(r.url).query for r in nowcast} == {f"from={LATEST}"}
    assert {r.headers["x-nowcast-from"] for r in nowcast} == {LATEST}
    viewer.assert_clean()


def test_mid_loop_screenshot(browser: Browser, site: Site) -> None:
    lat, lon = site.storm
    viewer = open_viewer(browser, site.url, f"#layer=reflectivity&time=live&z=5&lat={lat:.3f}&lon={lon + 4:.3f}&opacity=80")
    try:
        page = viewer.page
        page.get_by_role("button", name="Play").click()
        target = NOWCAST[1]
        page.wait_for_function(f"() => window.__frames.some((f) => f.time === {target!r})")
        assert "forecast" in (page.locator("#timebar").get_attribute("class") or "")
        path = screenshot(page, "viewer-mid-loop.png")
        # The README's picture: made when missing, or redone on request (so a test run leaves git clean).
        if not README_SCREENSHOT.exists() or os.environ.get("WXTILES_UPDATE_DOCS") == "1":
            README_SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(path, README_SCREENSHOT)
        viewer.assert_clean()
    finally:
        viewer.context.close()


def test_forecast_frames_are_labelled_and_coloured(viewer: Viewer) -> None:
    page = viewer.page
    timebar = page.locator("#timebar")
    observed_colour = timebar.evaluate("(el) => getComputedStyle(el).borderTopColor")
    assert "forecast" not in (timebar.get_attribute("class") or "")
    page.get_by_role("button", name="Next frame").click()
    viewer.wait_for_frame(NOWCAST[0])
    assert page.locator("#frame-kind").inner_text() == "Forecast +5 min"
    assert "forecast" in (timebar.get_attribute("class") or "")
    assert timebar.evaluate("(el) => getComputedStyle(el).borderTopColor") != observed_colour
    page.locator("#time-slider").fill(str(LOOP.index(NOWCAST[4])))
    viewer.wait_for_frame(NOWCAST[4])
    assert page.locator("#frame-kind").inner_text() == "Forecast +25 min"
    assert page.locator("#time-slider").get_attribute("aria-valuetext").endswith("Forecast +25 min")  # type: ignore[union-attr]
    page.locator("#time-slider").fill("0")
    viewer.wait_for_frame(OBSERVED[0])
    assert page.locator("#frame-kind").inner_text() == "Observed"
    assert "forecast" not in (timebar.get_attribute("class") or "")
    # A model layer: every frame is a forecast, labelled with its lead from the model run.
    page.locator("#layer-select").select_option("temperature-2m")
    viewer.wait_for_frame(MODEL[-1], "temperature-2m")  # the valid time nearest to now
    assert page.locator("#frame-kind").inner_text() == "Forecast +3 h"
    assert "forecast" in (timebar.get_attribute("class") or "")
    page.keyboard.press("ArrowLeft")
    viewer.wait_for_frame(MODEL[0], "temperature-2m")
    assert page.locator("#frame-kind").inner_text() == "Forecast +2 h"
    assert page.locator("#xyz-url").input_value().endswith("/tiles/temperature-2m/latest/{z}/{x}/{y}.png")
    assert {r.status for r in viewer.tiles("temperature-2m")} == {200}
    viewer.assert_clean()


def test_nowcast_frames_show_how_good_their_lead_has_been(viewer: Viewer, api: httpx.Client) -> None:
    """Four frames 5 minutes apart: +5 min nowcasts were verified twice, +10 once, +15 never."""
    verification = api.get("/api/layers/reflectivity/verification").json()
    five, ten, fifteen = verification["leads"][:3]
    assert (five["cases"], ten["cases"], fifteen["cases"]) == (2, 1, 0)
    page = viewer.page
    skill = page.locator("#frame-skill")
    assert skill.is_hidden()  # an observed frame
    page.get_by_role("button", name="Next frame").click()
    viewer.wait_for_frame(NOWCAST[0])
    csi = five["thresholds"][0]["csi"]
    expected = f"CSI {csi:.2f} (> 20 dBZ) over the last 6 h" if csi is not None else "No > 20 dBZ forecast or observed over the last 6 h"
    page.wait_for_function("(text) => document.getElementById('frame-skill').textContent === text", arg=expected)
    assert skill.is_visible()
    title = skill.get_attribute("title") or ""
    for row in five["thresholds"]:
        assert f"> {row['threshold']:g} dBZ: CSI " in title
    assert "2 +5 min nowcasts scored" in title
    page.locator("#time-slider").fill(str(LOOP.index(NOWCAST[2])))
    viewer.wait_for_frame(NOWCAST[2])
    assert skill.inner_text() == "Not verified over the last 6 h"
    page.locator("#layer-select").select_option("temperature-2m")
    viewer.wait_for_frame(MODEL[-1], "temperature-2m")
    assert skill.is_hidden()  # model forecasts are not verified live
    viewer.assert_clean()


def test_legend_matches_the_colormap(viewer: Viewer, api: httpx.Client) -> None:
    page = viewer.page
    colormap = api.get("/api/colormaps/nws-reflectivity").json()
    assert colormap["type"] == "interval"
    swatches = page.locator("#legend-scale .swatch")
    got = swatches.evaluate_all(
        "(els) => els.map((el) => [Number(el.dataset.value), el.dataset.color, el.querySelector('.tick').textContent,"
        " getComputedStyle(el).backgroundColor])"
    )

    def rgb(color: str) -> str:
        r, g, b, a = (int(color[i : i + 2], 16) for i in (1, 3, 5, 7))
        return f"rgb({r}, {g}, {b})" if a == 255 else f"rgba({r}, {g}, {b}, {a / 255:.3g})"

    assert got == [[s["value"], s["color"], f"{s['value']:g}", rgb(s["color"])] for s in colormap["stops"]]
    assert page.locator("#legend-units").inner_text() == colormap["units"] == "dBZ"
    assert page.locator("#legend").is_visible()
    # A continuous scale: a gradient through every stop, labelled in the layer's units.
    page.locator("#layer-select").select_option("temperature-2m")
    viewer.wait_for_frame(MODEL[-1], "temperature-2m")
    temperature = api.get("/api/colormaps/temperature").json()
    page.wait_for_function("() => document.getElementById('legend-scale').dataset.colormap === 'temperature'")
    gradient = page.locator("#legend-scale .gradient").evaluate("(el) => el.style.backgroundImage")
    assert gradient.count("rgb") == len(temperature["stops"])
    ticks = page.locator("#legend-scale .tick").evaluate_all("(els) => els.map((el) => Number(el.dataset.value))")
    assert ticks[0] == temperature["stops"][0]["value"] and set(ticks) <= {s["value"] for s in temperature["stops"]}
    assert page.locator("#legend-units").inner_text() == "\u00b0C"  # degC, for people
    viewer.assert_clean()


def test_click_shows_the_point_value(browser: Browser, site: Site, api: httpx.Client) -> None:
    lat, lon = site.storm
    viewer = open_viewer(browser, site.url, f"#layer=reflectivity&time=live&z=6&lat={lat:.5f}&lon={lon:.5f}&opacity=75")
    try:
        page = viewer.page
        box = page.locator("#map").bounding_box()
        assert box is not None
        x, y = round(box["width"] / 2), round(box["height"] / 2)
        click_lon, click_lat = page.evaluate(
            "([x, y]) => { const ll = window.wxtilesMap.containerPointToLatLng([x, y]).wrap(); return [ll.lng, ll.lat]; }", [x, y]
        )
        assert abs(click_lon - lon) < 0.1 and abs(click_lat - lat) < 0.1
        with page.expect_response(lambda r: "/api/layers/reflectivity/point?" in r.url) as asked:
            page.mouse.click(box["x"] + x, box["y"] + y)
        query = parse_qs(urlsplit(asked.value.url).query)
        assert asked.value.status == 200
        assert query["time"] == [LATEST]
        expected = api.get("/api/layers/reflectivity/point", params={k: v[0] for k, v in query.items()}).json()
        assert expected["status"] == "ok" and expected["units"] == "dBZ" and expected["value"] > 30
        popup = page.locator(".leaflet-popup-content .point-popup")
        page.wait_for_function("() => !document.querySelector('.point-popup .value').textContent.startsWith('Loading')")
        match = re.fullmatch(r"(\d+(?:\.\d{1,2})?) dBZ", popup.locator(".value").inner_text())
        assert match, popup.locator(".value").inner_text()
        assert float(match.group(1)) == pytest.approx(expected["value"], abs=0.051)
        assert popup.locator(".title").inner_text() == "Radar reflectivity (composite)"
        assert popup.locator(".time").inner_text().replace("\u202f", " ") == f"{viewer.label()} \u00b7 Observed"
        # A nowcast frame's value is the nowcast's.
        page.keyboard.press("ArrowRight")
        viewer.wait_for_frame(NOWCAST[0])
        with page.expect_response(lambda r: "/api/layers/reflectivity/point?" in r.url) as asked:
            page.mouse.click(box["x"] + x, box["y"] + y)
        expected = api.get(asked.value.url).json()
        assert expected["nowcast"]["lead_minutes"] == 5
        page.wait_for_function("() => !document.querySelector('.point-popup .value').textContent.startsWith('Loading')")
        assert popup.locator(".time").inner_text().endswith("Forecast +5 min")
        shown = popup.locator(".value").inner_text()
        if expected["status"] == "ok":
            assert float(shown.removesuffix(" dBZ")) == pytest.approx(expected["value"], abs=0.051)
        else:
            assert shown == {"no-echo": "No echo", "no-coverage": "No coverage"}[expected["status"]]
        screenshot(page, "viewer-point.png")
        viewer.assert_clean()
    finally:
        viewer.context.close()


def test_permalink_restores_layer_time_and_view(browser: Browser, site: Site) -> None:
    first = open_viewer(browser, site.url)
    try:
        page = first.page
        page.evaluate("() => { window.wxtilesMap.setView([41.25, -93.5], 6, { animate: false }); }")
        page.locator("#panel-extra #opacity").fill("40")
        page.locator("#time-slider").fill("1")
        first.wait_for_frame(OBSERVED[1])
        page.wait_for_function(f"() => location.hash.includes('time={OBSERVED[1]}') && location.hash.includes('opacity=40')")
        link = page.url
        params = parse_qs(urlsplit(link).fragment)
        assert params["layer"] == ["reflectivity"] and params["z"] == ["6"]
        assert float(params["lat"][0]) == pytest.approx(41.25, abs=1e-4) and float(params["lon"][0]) == pytest.approx(-93.5, abs=1e-4)
        first.assert_clean()
    finally:
        first.context.close()

    second = open_viewer(browser, site.url, "#" + urlsplit(link).fragment, wait_for=("reflectivity", OBSERVED[1]))
    try:
        page = second.page
        assert page.locator("#layer-select").input_value() == "reflectivity"
        assert second.shown_time() == OBSERVED[1]
        lat, lon, zoom = page.evaluate("() => { const c = window.wxtilesMap.getCenter(); return [c.lat, c.lng, window.wxtilesMap.getZoom()]; }")
        assert (round(lat, 4), round(lon, 4), zoom) == (41.25, -93.5, 6)
        assert page.locator("#opacity").input_value() == "40"
        assert page.locator(".leaflet-radar-pane").evaluate("(el) => el.style.opacity") == "0.4"
        # Only the linked frame and its neighbours were loaded, never the latest first.
        assert second.tile_times() <= {OBSERVED[0], OBSERVED[1], OBSERVED[2]}
        assert page.url == link
        # Another link in the same page (a model layer at one valid time): the view follows it.
        page.evaluate(f"() => {{ location.hash = '#layer=temperature-2m&time={MODEL[0]}&z=5&lat=38&lon=-97&opacity=60'; }}")
        second.wait_for_frame(MODEL[0], "temperature-2m")
        assert page.locator("#layer-select").input_value() == "temperature-2m"
        assert page.locator("#frame-kind").inner_text() == "Forecast +2 h"
        assert page.evaluate("() => [window.wxtilesMap.getZoom(), window.wxtilesMap.getCenter().lat]") == [5, 38]
        assert page.locator("#opacity").input_value() == "60"
        second.assert_clean()
    finally:
        second.context.close()


def test_keyboard_drives_the_animation(viewer: Viewer) -> None:
    page = viewer.page
    page.keyboard.press("ArrowLeft")
    viewer.wait_for_frame(OBSERVED[-2])
    assert viewer.shown_time() == OBSERVED[-2]
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    viewer.wait_for_frame(NOWCAST[0])
    page.keyboard.press("Home")
    viewer.wait_for_frame(OBSERVED[0])
    page.keyboard.press("End")
    viewer.wait_for_frame(LATEST)
    page.keyboard.press(" ")
    assert page.locator("#play").get_attribute("aria-label") == "Pause"
    page.wait_for_function("() => window.__frames.length >= 3")
    page.keyboard.press(" ")
    assert page.locator("#play").get_attribute("aria-label") == "Play"
    # The map did not pan on the arrows: they drive the frames.
    viewer.assert_clean()


def test_time_label_is_local_with_utc_on_hover_and_toggle(browser: Browser, site: Site) -> None:
    viewer = open_viewer(browser, site.url, timezone_id="America/Chicago")
    try:
        page = viewer.page
        label = page.locator("#time-label")
        assert viewer.label() == "Nov 27, 3:15 PM CST"
        assert label.get_attribute("title") == "2026-11-27 21:15 UTC"
        toggle = page.get_by_role("button", name="UTC")
        assert toggle.get_attribute("aria-pressed") == "false"
        toggle.click()
        assert toggle.get_attribute("aria-pressed") == "true"
        assert viewer.label() == "Nov 27, 9:15 PM UTC"
        assert (label.get_attribute("title") or "").replace("\u202f", " ") == "Nov 27, 3:15 PM CST"
        viewer.assert_clean()
    finally:
        viewer.context.close()


def test_opacity_slider(viewer: Viewer) -> None:
    page = viewer.page
    assert page.locator(".leaflet-radar-pane").evaluate("(el) => el.style.opacity") == "0.75"
    page.get_by_label("Opacity").fill("30")
    assert page.locator(".leaflet-radar-pane").evaluate("(el) => el.style.opacity") == "0.3"
    assert page.locator("#opacity-value").inner_text() == "30%"
    page.wait_for_function("() => location.hash.includes('opacity=30')")
    viewer.assert_clean()


def test_copy_xyz_url_gives_the_latest_template(viewer: Viewer) -> None:
    page = viewer.page
    viewer.context.grant_permissions(["clipboard-read", "clipboard-write"])
    template = page.locator("#xyz-url").input_value()
    assert template == f"{page.url.split('#')[0].rstrip('/')}/tiles/reflectivity/latest/{{z}}/{{x}}/{{y}}.png"
    page.get_by_role("button", name="Copy XYZ URL").click()
    page.wait_for_function("() => document.getElementById('copy-note').textContent === 'XYZ URL copied'")
    assert page.evaluate("() => navigator.clipboard.readText()") == template
    response = httpx.get(template.format(z=4, x=3, y=6), timeout=20)
    assert response.status_code == 200 and response.headers["x-frame-time"] == LATEST
    viewer.assert_clean()


def test_phone_viewport_keeps_the_controls_on_screen(browser: Browser, site: Site) -> None:
    width, height = 390, 844
    viewer = open_viewer(
        browser, site.url, viewport={"width": width, "height": height}, device_scale_factor=3, is_mobile=True, has_touch=True
    )
    try:
        page = viewer.page
        assert page.evaluate("() => [window.innerWidth, window.innerHeight]") == [width, height]

        def on_screen(selector: str, min_size: float = 24) -> None:
            control = page.locator(selector)
            assert control.is_visible(), selector
            box = control.bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
            assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, (selector, box)
            assert box["width"] >= min_size and box["height"] >= min_size, (selector, box)

        for selector in ("#layer-select", "#play", "#step-back", "#step-forward", "#speed", "#live", "#utc-toggle", "#panel-toggle"):
            on_screen(selector, 40)  # finger-sized
        on_screen("#time-slider")
        on_screen("#time-label", 10)
        on_screen("#legend-scale", 10)
        # HiDPI: the 512-px tiles.
        assert viewer.tiles(time=LATEST) and all(urlsplit(r.url).path.endswith("@2x.png") for r in viewer.tiles())
        # The options fold away on a phone and open with a tap.
        assert not page.locator("#opacity").is_visible()
        page.locator("#panel-toggle").tap()
        assert page.locator("#panel-toggle").get_attribute("aria-expanded") == "true"
        for selector in ("#opacity", "#basemap-select", "#copy-xyz"):
            on_screen(selector)
        page.locator("#panel-toggle").tap()
        page.locator("#play").tap()
        assert page.locator("#play").get_attribute("aria-label") == "Pause"
        page.wait_for_function("() => window.__frames.length >= 2")
        screenshot(page, "viewer-phone.png")
        viewer.assert_clean()
    finally:
        viewer.context.close()


def test_controls_have_accessible_names(viewer: Viewer) -> None:
    page = viewer.page
    names = page.evaluate(
        """() => [...document.querySelectorAll('button, select, input')].filter((el) => el.offsetParent !== null)
              .map((el) => [el.id, (el.labels && el.labels.length ? el.labels[0].textContent : '') || el.getAttribute('aria-label') || el.textContent.trim()])"""
    )
    assert names and all(name for _, name in names), names
    for role, name in (("button", "Play"), ("button", "Previous frame"), ("button", "Next frame"), ("slider", "Frame time"),
                       ("combobox", "Layer"), ("combobox", "Animation speed"), ("slider", "Opacity"), ("button", "Copy XYZ URL")):
        assert page.get_by_role(role, name=name, exact=True).count() == 1, (role, name)  # type: ignore[arg-type]
    viewer.assert_clean()


def test_new_frames_appear_without_a_reload(browser: Browser, tmp_path: Path) -> None:
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    frames = radar_frames(3)
    for when, dbz in frames[:2]:
        ingest_radar(store, tmp_path, when, dbz)

    def fast_poll(route: Route) -> None:
        config = json.loads(route.fetch().text())
        route.fulfill(json={**config, "poll_seconds": 1})

    with start_server(tmp_path) as live:
        viewer = open_viewer(browser, live.url, wait_for=("reflectivity", OBSERVED[1]), routes={"/config.json": fast_poll})
        try:
            page = viewer.page
            assert page.locator("#frame-count").inner_text() == f"2/{2 + len(NOWCAST)}"
            ingest_radar(store, tmp_path, *frames[2])
            # Live: the new observation is shown by itself, and the loop now ends 30 minutes after it.
            viewer.wait_for_frame(OBSERVED[2])
            assert page.locator("#frame-kind").inner_text() == "Observed"
            assert page.locator("#frame-count").inner_text() == f"3/{3 + len(NOWCAST)}"
            assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1  # no reload
            page.get_by_role("button", name="Next frame").click()
            viewer.wait_for_frame(iso(T0 + minutes(15)))
            assert page.locator("#frame-kind").inner_text() == "Forecast +5 min"
            viewer.assert_clean()
        finally:
            viewer.context.close()


def test_polls_ask_for_recent_frames_and_revalidate(browser: Browser, site: Site) -> None:
    def fast_poll(route: Route) -> None:
        config = json.loads(route.fetch().text())
        route.fulfill(json={**config, "poll_seconds": 1})

    viewer = open_viewer(browser, site.url, routes={"/config.json": fast_poll})
    try:
        polls: list[tuple[str, int, str | None]] = []
        viewer.page.on("response", lambda r: polls.append((r.url, r.status, r.request.headers.get("if-none-match")))
                       if "/api/layers?" in r.url else None)
        deadline = time.monotonic() + 20
        while len(polls) < 2:
            assert time.monotonic() < deadline, polls
            viewer.page.wait_for_timeout(200)
        # The history window (120 minutes, and a frame's margin), revalidated: nothing new, nothing sent.
        assert all(url.endswith("/api/layers?hours=2.1") for url, _, _ in polls), polls
        assert all(status == 304 and etag for _, status, etag in polls), polls
        assert viewer.page.locator("#frame-count").inner_text().startswith(f"{len(OBSERVED)}/")
        viewer.assert_clean()
    finally:
        viewer.context.close()


# --- the point forecast chart -------------------------------------------------

# Each uPlot chart of the panel: its group, and per series its label, dash, run and the points it draws.
CHARTS = """() => window.wxtilesChart.charts.map((u) => ({
  group: u.root.dataset.group,
  series: u.series.slice(1).map((s, i) => ({
    label: s.label, dash: s.dash || null, ...u.wxSeries[i],
    points: u.data[0].map((x, j) => [x, u.data[i + 1][j]]).filter(([, y]) => y !== null && y !== undefined),
  })),
}))"""


def chart_view(site: Site, zoom: int = 6) -> str:
    lat, lon = site.chart_point
    return f"#layer=reflectivity&time=live&z={zoom}&lat={lat:.5f}&lon={lon:.5f}&opacity=75"


def wait_for_charts(page: Page, count: int) -> list[dict]:
    page.wait_for_function(
        f"() => !document.getElementById('chart-panel').hasAttribute('aria-busy') && window.wxtilesChart.charts.length === {count}"
    )
    return page.evaluate(CHARTS)  # type: ignore[no-any-return]


def drawn(answer: dict, kinds: tuple[str, ...]) -> list[list[float]]:
    """The [unix seconds, value] points a series answer gives for some kinds of frame."""
    return [[datetime.fromisoformat(v["time"].replace("Z", "+00:00")).timestamp(), v["value"]]
            for v in answer["values"] if v["kind"] in kinds and v["value"] is not None]


def click_map_centre(page: Page) -> None:
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def series_of(api: httpx.Client, layer: str, lat: float, lon: float, **params: str) -> dict:
    response = api.get(f"/api/layers/{layer}/series", params={"lat": f"{lat:.5f}", "lon": f"{lon:.5f}", **params})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_chart_opens_on_click_with_each_series_of_the_point(browser: Browser, site: Site, api: httpx.Client) -> None:
    viewer = open_viewer(browser, site.url, chart_view(site), timezone_id="America/Chicago", viewport={"width": 1280, "height": 1000})
    try:
        page = viewer.page
        assert page.locator("#chart-panel").is_hidden()
        with page.expect_response(lambda r: "/api/layers/gfs-wind-speed-10m/series?" in r.url) as asked:
            click_map_centre(page)
        lat, lon = (float(parse_qs(urlsplit(asked.value.url).query)[k][0]) for k in ("lat", "lon"))
        charts = wait_for_charts(page, 3)
        assert [c["group"] for c in charts] == ["reflectivity", "forecast-degC", "forecast-m/s"]
        assert page.locator("#chart-status").is_hidden()
        # Radar: the loop's two hours of observations, then the nowcast from the last one on, dashed.
        radar = series_of(api, "reflectivity", lat, lon, start=iso(datetime.fromisoformat(LATEST[:-1]) - timedelta(minutes=120)))
        observed, nowcast = charts[0]["series"]
        assert (observed["label"], observed["kind"], observed["dash"]) == ("Observed", "observed", None)
        assert (nowcast["label"], nowcast["kind"], nowcast["dash"]) == ("Nowcast", "nowcast", [6, 4])
        assert observed["points"] == drawn(radar, ("observed",)) and len(observed["points"]) == len(OBSERVED)
        assert nowcast["points"] == drawn(radar, ("observed",))[-1:] + drawn(radar, ("nowcast",))
        assert len(nowcast["points"]) == 1 + len(NOWCAST)
        # Models: each one's newest run, one series per model, the model and run in the legend.
        for chart, variable in zip(charts[1:], ("temperature-2m", "wind-speed-10m"), strict=True):
            assert [(s["layer"], s["kind"], s["run"]) for s in chart["series"]] == [
                (f"hrrr-{variable}", "forecast", iso(HRRR_RUNS[-1])), (f"gfs-{variable}", "forecast", iso(GFS_RUN)),
            ]
            for s in chart["series"]:
                answer = series_of(api, s["layer"], lat, lon)
                assert s["points"] == drawn(answer, ("forecast",)) and len(s["points"]) == len(answer["values"])
            assert [s["label"] for s in chart["series"]] == ["HRRR run Nov 27, 12:00 PM CST", "GFS run Nov 27, 6:00 AM CST"]
        legend = page.locator("#chart-body .u-legend").first
        assert legend.locator(".u-series").nth(2).inner_text().startswith("Nowcast")
        # Hovering a point shows its time, local with UTC, and its value in the layer's units.
        canvas = page.locator("#chart-body .u-over").first
        box = canvas.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
        values = legend.locator(".u-value").all_inner_texts()
        assert values[0].replace("\u202f", " ") == "Nov 27, 3:45 PM CST (21:45 UTC)"
        assert values[2].endswith(" dBZ") or values[2] == "No echo"
        # The README's picture: the panel over the map, a point hovered (made when missing, or on request).
        panel = page.locator("#chart-panel").bounding_box()
        assert panel is not None
        path = screenshot(page, "viewer-chart.png")
        page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1000, "height": panel["y"] + panel["height"] + 10})
        if not README_CHART.exists() or os.environ.get("WXTILES_UPDATE_DOCS") == "1":
            shutil.copyfile(path, README_CHART)
        # The run selectors say which runs exist, newest first.
        hrrr = page.get_by_label("HRRR run", exact=True)
        assert hrrr.locator("option").evaluate_all("(os) => os.map((o) => o.value)") == [iso(r) for r in reversed(HRRR_RUNS)]
        assert hrrr.input_value() == iso(HRRR_RUNS[-1])
        # The link holds the point, and the point is marked on the map.
        page.wait_for_function("() => location.hash.includes('&pt=')")
        pt = parse_qs(urlsplit(page.url).fragment)["pt"][0]
        assert [float(v) for v in pt.split(",")] == pytest.approx([lat, lon], abs=1e-5)
        assert page.locator(".leaflet-overlay-pane path.leaflet-interactive, .leaflet-overlay-pane path").count() >= 1
        # The UTC toggle switches the chart's times too.
        page.get_by_role("button", name="UTC").click()
        page.wait_for_function("() => window.wxtilesChart.charts.length === 3 && window.wxtilesChart.charts[0].series[0].label === 'UTC'")
        wait_for_charts(page, 3)
        assert page.get_by_label("HRRR run", exact=True).locator("option").first.inner_text().replace("\u202f", " ") == "Nov 27, 6:00 PM UTC (newest)"
        viewer.assert_clean()
    finally:
        viewer.context.close()


def test_chart_run_selector_switches_the_model_runs(browser: Browser, site: Site, api: httpx.Client) -> None:
    lat, lon = site.chart_point
    viewer = open_viewer(browser, site.url, chart_view(site) + f"&pt={lat:.5f},{lon:.5f}")
    try:
        page = viewer.page
        before = wait_for_charts(page, 3)
        older = iso(HRRR_RUNS[0])
        with page.expect_response(lambda r: "/api/layers/hrrr-temperature-2m/series?" in r.url and parse_qs(urlsplit(r.url).query).get("run") == [older]):
            page.get_by_label("HRRR run", exact=True).select_option(older)
        after = wait_for_charts(page, 3)
        for chart_before, chart_after, variable in zip(before[1:], after[1:], ("temperature-2m", "wind-speed-10m"), strict=True):
            hrrr = chart_after["series"][0]
            assert hrrr["run"] == older and hrrr["label"] == "HRRR run Nov 27, 5:00 PM UTC"
            assert hrrr["points"] == drawn(series_of(api, f"hrrr-{variable}", lat, lon, run=older), ("forecast",))
            assert hrrr["points"] != chart_before["series"][0]["points"]
            assert chart_after["series"][1] == chart_before["series"][1]  # GFS stays on its run
        assert after[0] == before[0]
        assert page.get_by_label("HRRR run", exact=True).input_value() == older
        viewer.assert_clean()
    finally:
        viewer.context.close()


def test_chart_csv_has_every_series_shown(browser: Browser, site: Site, api: httpx.Client, tmp_path: Path) -> None:
    lat, lon = site.chart_point
    viewer = open_viewer(browser, site.url, chart_view(site) + f"&pt={lat:.5f},{lon:.5f}", accept_downloads=True)
    try:
        page = viewer.page
        charts = wait_for_charts(page, 3)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        assert download.value.suggested_filename == f"wxtiles-point-{lat:.3f}_{lon:.3f}.csv"
        target = tmp_path / "chart.csv"
        download.value.save_as(target)
        rows = list(csv.DictReader(target.open(newline="")))
        layers = list(dict.fromkeys(s["layer"] for c in charts for s in c["series"]))
        assert list(dict.fromkeys(r["layer"] for r in rows)) == layers
        start = iso(datetime.fromisoformat(LATEST[:-1]) - timedelta(minutes=120))
        for layer in layers:
            answer = series_of(api, layer, lat, lon, **({"start": start} if layer == "reflectivity" else {}))
            mine = [r for r in rows if r["layer"] == layer]
            assert [(r["time"], r["kind"], r["status"], r["run"]) for r in mine] == [
                (v["time"], v["kind"], v["status"], v.get("run", "")) for v in answer["values"]
            ]
            assert [float(r["value"]) if r["value"] else None for r in mine] == [v["value"] for v in answer["values"]]
            assert {(r["units"], r["lat"], r["lon"]) for r in mine} == {(answer["units"], f"{lat:.5f}", f"{lon:.5f}")}
        assert {r["model"] for r in rows if r["layer"].startswith("hrrr-")} == {"hrrr"}
        viewer.assert_clean()
    finally:
        viewer.context.close()


def test_chart_keyboard_permalink_and_escape(browser: Browser, site: Site) -> None:
    lat, lon = site.chart_point
    viewer = open_viewer(browser, site.url, chart_view(site) + f"&pt={lat:.5f},{lon:.5f}")
    try:
        page = viewer.page
        wait_for_charts(page, 3)
        assert page.locator("#chart-where").inner_text() == f"{abs(lat):.2f}\u00b0 N, {abs(lon):.2f}\u00b0 W"
        # Escape closes the panel; the link loses the point.
        page.get_by_role("button", name="Close the forecast chart").focus()
        page.keyboard.press("Escape")
        assert page.locator("#chart-panel").is_hidden()
        page.wait_for_function("() => !location.hash.includes('pt=')")
        # Enter on the focused map opens it at the map's centre, with the focus in the panel.
        page.locator("#map").focus()
        page.keyboard.press("Enter")
        wait_for_charts(page, 3)
        assert page.evaluate("() => document.activeElement.id") == "chart-title"
        focused = []
        for _ in range(4):
            page.keyboard.press("Tab")
            focused.append(page.evaluate("() => document.activeElement.id"))
        assert focused == ["chart-close", "chart-run-hrrr", "chart-run-gfs", "chart-csv"]
        # Escape from the run selector closes too, and the keyboard is back on the map.
        page.get_by_label("GFS run", exact=True).focus()
        page.keyboard.press("Escape")
        assert page.locator("#chart-panel").is_hidden()
        assert page.evaluate("() => document.activeElement.id") == "map"
        viewer.assert_clean()
    finally:
        viewer.context.close()


def test_chart_says_when_no_layer_covers_the_point_or_a_request_fails(browser: Browser, site: Site) -> None:
    def observed_only(route: Route) -> None:
        data = json.loads(route.fetch().text())
        route.fulfill(json={**data, "layers": [layer for layer in data["layers"] if layer["kind"] == "observed"]})

    def failing(route: Route) -> None:
        route.fulfill(status=503, json={"error": "store unavailable"})

    # Southern Africa: no radar tile to wait for there.
    viewer = open_viewer(browser, site.url, "#layer=reflectivity&time=live&z=4&lat=-30&lon=25&opacity=75",
                         wait_for=None, routes={"/api/layers?*": observed_only})
    try:
        page = viewer.page
        page.wait_for_function("() => document.getElementById('time-label').dateTime !== ''")
        click_map_centre(page)
        page.wait_for_function("() => !document.getElementById('chart-panel').hasAttribute('aria-busy')")
        assert page.locator("#chart-status").inner_text() == "No layer covers this point."
        assert page.locator("#chart-body .uplot").count() == 0
        assert page.get_by_role("button", name="Download CSV").is_disabled()
        viewer.assert_clean()
    finally:
        viewer.context.close()

    lat, lon = site.chart_point
    viewer = open_viewer(browser, site.url, chart_view(site) + f"&pt={lat:.5f},{lon:.5f}",
                         routes={"/api/layers/*/series?*": failing})
    try:
        page = viewer.page
        page.wait_for_function("() => document.getElementById('chart-status').textContent.startsWith('Could not load')")
        status = page.locator("#chart-status")
        assert status.is_visible() and "store unavailable" in status.inner_text()
        assert page.locator("#chart-body .uplot").count() == 0
        # The page logged the failed responses (Chromium does), nothing else.
        assert all("503" in e for e in viewer.errors), viewer.errors
    finally:
        viewer.context.close()


def test_chart_on_a_phone(browser: Browser, site: Site) -> None:
    width, height = 390, 844
    viewer = open_viewer(browser, site.url, chart_view(site, zoom=7), viewport={"width": width, "height": height},
                         device_scale_factor=3, is_mobile=True, has_touch=True)
    try:
        page = viewer.page
        box = page.locator("#map").bounding_box()
        assert box is not None
        page.touchscreen.tap(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        wait_for_charts(page, 3)
        panel = page.locator("#chart-panel").bounding_box()
        assert panel is not None
        assert panel["x"] >= 0 and panel["x"] + panel["width"] <= width and panel["y"] + panel["height"] <= height
        assert panel["height"] <= 0.65 * height  # the map stays in sight above it
        for canvas in page.locator("#chart-body canvas").all():
            b = canvas.bounding_box()
            assert b is not None and b["width"] <= width
        for control in ("#chart-close", "#chart-run-hrrr", "#chart-run-gfs"):
            b = page.locator(control).bounding_box()
            assert b is not None and b["width"] >= 40 and b["height"] >= 40, control
        csv_button = page.get_by_role("button", name="Download CSV")
        csv_button.scroll_into_view_if_needed()
        assert csv_button.is_visible() and csv_button.is_enabled()
        screenshot(page, "viewer-chart-phone.png")
        page.locator("#chart-close").tap()
        assert page.locator("#chart-panel").is_hidden()
        viewer.assert_clean()
    finally:
        viewer.context.close()
