"""The viewer in a real headless Chromium against the real app on loopback.

Chromium comes from Debian (``make setup`` installs it); ``playwright install``
is not used. The OSM basemap is unreachable on purpose (requests are aborted):
the radar overlay must still show and the page must log no errors of its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import mercantile
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Request, Response, Route, sync_playwright

from ingest.pipeline import ingest_file
from tests.conftest import T0, LiveServer, minutes, radar_file
from tileserver.layers import LAYERS
from tileserver.settings import Settings
from tileserver.storage import open_storage
from tileserver.store import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
BASEMAP_HOST = "tile.openstreetmap.org"
FRAMES = [f"{T0 + minutes(step):%Y-%m-%dT%H:%M:%SZ}" for step in (0, 5, 10)]
LATEST = FRAMES[-1]
STORM = (43.0, -100.0)  # lat, lon: the strong storm of radar_grid()
OPACITY = "0.75"  # the radar overlay's opacity once it is swapped in (app.js OVERLAY_OPACITY)
RADAR_TILE = re.compile(r"/tiles/reflectivity/([^/]+)/(\d+)/(\d+)/(\d+)\.png$")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("viewer")
    store = Store(open_storage(str(folder / "store"), create=True))
    for step in (0, 5, 10):
        ingest_file(store, radar_file(folder, T0 + minutes(step), shift_cols=step), LAYERS["reflectivity"])
    with LiveServer(Settings(store=str(folder / "store"), catalog_ttl_s=0.0)) as live:
        yield live


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=20) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make setup` (installs Debian's chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Viewer:
    page: Page
    errors: list[str] = field(default_factory=list)  # console errors, page errors, failed local requests
    responses: list[Response] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # basemap requests aborted on purpose
    unexpected: list[str] = field(default_factory=list)  # any other non-loopback request

    def radar_tiles(self, time: str) -> list[Response]:
        return [r for r in self.responses if (m := RADAR_TILE.search(urlsplit(r.url).path)) and m.group(1) == time]

    def wait_for_radar(self, time: str) -> None:
        """Until the overlay for `time` is the visible one and has at least one tile drawn."""
        self.page.wait_for_function(
            """([time, opacity]) => [...document.querySelectorAll('.leaflet-tile-pane > .leaflet-layer')].some(
                   (layer) => layer.style.opacity === opacity &&
                              layer.querySelector(`img.leaflet-tile-loaded[src*="tiles/reflectivity/${time}/"]`))""",
            arg=[time, OPACITY],
        )

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.unexpected == []
        assert self.blocked, "the basemap was never requested, so the unreachable-basemap case was not exercised"


def open_viewer(browser: Browser, server: LiveServer, **context_options: object) -> tuple[Viewer, BrowserContext]:
    context = browser.new_context(locale="en-US", timezone_id="UTC", **context_options)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(10_000)
    viewer = Viewer(page)
    local = urlsplit(server.url).netloc

    def route(route: Route) -> None:
        netloc = urlsplit(route.request.url).netloc
        if netloc == local:
            route.continue_()
            return
        (viewer.blocked if netloc == BASEMAP_HOST else viewer.unexpected).append(route.request.url)
        route.abort()

    def console(message: ConsoleMessage) -> None:
        # Chromium itself logs "Failed to load resource" for each aborted basemap
        # tile, attributed to the tile URL; the page logs nothing for it.
        if message.type == "error" and urlsplit(message.location.get("url", "")).netloc != BASEMAP_HOST:
            viewer.errors.append(f"console: {message.text} at {message.location}")

    def failed(request: Request) -> None:
        # ERR_ABORTED is Leaflet cancelling tiles it no longer needs (zoom change, frame swap).
        if urlsplit(request.url).netloc == local and request.failure != "net::ERR_ABORTED":
            viewer.errors.append(f"request failed: {request.url} {request.failure}")

    page.route("**/*", route)
    page.on("console", console)
    page.on("pageerror", lambda error: viewer.errors.append(f"pageerror: {error}"))
    page.on("requestfailed", failed)
    page.on("response", lambda response: viewer.responses.append(response))
    page.goto(server.url + "/")
    viewer.wait_for_radar(LATEST)
    return viewer, context


@pytest.fixture
def viewer(browser: Browser, server: LiveServer) -> Iterator[Viewer]:
    viewer, context = open_viewer(browser, server, viewport={"width": 1280, "height": 800})
    yield viewer
    context.close()


def test_page_loads_latest_radar_without_errors(viewer: Viewer) -> None:
    page = viewer.page
    tiles = viewer.radar_tiles(LATEST)
    assert tiles, "no radar tile was requested for the latest frame"
    assert [r.status for r in tiles] == [200] * len(tiles)
    assert {r.headers["content-type"] for r in tiles} == {"image/png"}
    # Only the latest frame was loaded at start, and every local response is a success.
    assert {RADAR_TILE.search(r.url).group(1) for r in viewer.responses if RADAR_TILE.search(r.url)} == {LATEST}  # type: ignore[union-attr]
    assert [r.url for r in viewer.responses if r.status >= 400] == []
    # The view is fitted to the layer bounds straight away: no radar tile is asked for at the initial zoom 2.
    zoom = page.evaluate("() => window.wxtilesMap.getZoom()")
    assert zoom in (3, 4)
    assert {int(RADAR_TILE.search(r.url).group(2)) for r in tiles} == {zoom}  # type: ignore[union-attr]
    label = page.locator("#time-label")
    assert label.get_attribute("datetime") == LATEST
    assert label.inner_text() == "Nov 27, 2026, 9:10 PM"
    assert page.locator("#frame-count").inner_text() == "3/3"
    assert page.locator("#units").inner_text() == "dBZ"
    page.wait_for_function("() => document.getElementById('legend').naturalWidth > 0")
    assert page.locator("#legend").is_visible()
    assert page.locator("#status").inner_text() == ""
    viewer.assert_clean()


def test_layer_select_lists_the_api_layers(viewer: Viewer, api: httpx.Client) -> None:
    layers = api.get("/api/layers").json()["layers"]
    select = viewer.page.locator("#layer-select")
    options = select.locator("option").evaluate_all("(opts) => opts.map((o) => [o.value, o.textContent])")
    assert options == [[layer["id"], layer["title"]] for layer in layers]
    assert len(options) == len(LAYERS)
    assert select.is_enabled()
    assert select.input_value() == "reflectivity"
    viewer.assert_clean()


def test_xyz_url_is_an_absolute_latest_template(viewer: Viewer) -> None:
    template = viewer.page.locator("#xyz-url").input_value()
    assert template == f"{viewer.page.url.rstrip('/')}/tiles/reflectivity/latest/{{z}}/{{x}}/{{y}}.png"
    assert template.startswith("http://127.0.0.1:")
    tile = mercantile.tile(STORM[1], STORM[0], 4)
    response = httpx.get(template.format(z=tile.z, x=tile.x, y=tile.y), timeout=20)
    assert response.status_code == 200 and response.headers["x-frame-time"] == LATEST
    assert viewer.page.locator("#copy").is_enabled()
    viewer.assert_clean()


def test_play_shows_other_frames(viewer: Viewer) -> None:
    page = viewer.page
    label = page.locator("#time-label")
    before = label.inner_text()
    play = page.locator("#play")
    assert play.is_enabled()
    play.click()
    assert play.get_attribute("aria-label") == "Pause animation"
    # After the latest frame the animation wraps round to the first.
    page.wait_for_function(f"() => document.getElementById('time-label').dateTime !== {LATEST!r}")
    play.click()  # pause, so the frame checked below stays on screen
    assert play.get_attribute("aria-label") == "Play animation"
    shown = label.get_attribute("datetime")
    assert shown in FRAMES[:-1]
    viewer.wait_for_radar(shown)  # type: ignore[arg-type]
    assert label.inner_text() != before
    tiles = viewer.radar_tiles(shown)  # type: ignore[arg-type]
    assert tiles and [r.status for r in tiles] == [200] * len(tiles)
    viewer.assert_clean()


def test_slider_selects_a_frame(viewer: Viewer) -> None:
    page = viewer.page
    page.locator("#time-slider").fill("1")
    label = page.locator("#time-label")
    assert label.get_attribute("datetime") == FRAMES[1]
    assert label.inner_text() == "Nov 27, 2026, 9:05 PM"
    assert page.locator("#frame-count").inner_text() == "2/3"
    viewer.wait_for_radar(FRAMES[1])
    tiles = viewer.radar_tiles(FRAMES[1])
    assert tiles and [r.status for r in tiles] == [200] * len(tiles)
    # The XYZ template stays on `latest` whatever frame is on screen.
    assert page.locator("#xyz-url").input_value().endswith("/tiles/reflectivity/latest/{z}/{x}/{y}.png")
    viewer.assert_clean()


def test_click_on_storm_shows_the_point_value(viewer: Viewer, api: httpx.Client) -> None:
    page = viewer.page
    page.evaluate("([lat, lon]) => window.wxtilesMap.setView([lat, lon], 6, { animate: false })", list(STORM))
    viewer.wait_for_radar(LATEST)
    box = page.locator("#map").bounding_box()
    assert box is not None
    x, y = round(box["width"] / 2), round(box["height"] / 2)
    lon, lat = page.evaluate(
        "([x, y]) => { const ll = window.wxtilesMap.containerPointToLatLng([x, y]).wrap(); return [ll.lng, ll.lat]; }", [x, y]
    )
    assert abs(lon - STORM[1]) < 0.1 and abs(lat - STORM[0]) < 0.1
    with page.expect_response(lambda r: "/api/layers/reflectivity/point?" in r.url) as asked:
        page.mouse.click(box["x"] + x, box["y"] + y)
    query = parse_qs(urlsplit(asked.value.url).query)
    assert asked.value.status == 200
    assert query["time"] == [LATEST]
    assert float(query["lon"][0]) == pytest.approx(lon, abs=1e-5)
    assert float(query["lat"][0]) == pytest.approx(lat, abs=1e-5)

    expected = api.get("/api/layers/reflectivity/point", params={"lon": f"{lon:.5f}", "lat": f"{lat:.5f}", "time": LATEST}).json()
    assert expected["status"] == "ok" and expected["units"] == "dBZ" and expected["value"] > 45

    popup = page.locator(".leaflet-popup-content .point-popup")
    shown = popup.locator(".value").inner_text()
    match = re.fullmatch(r"(\d+(?:\.\d{1,2})?) dBZ", shown)
    assert match, shown
    assert float(match.group(1)) == pytest.approx(expected["value"], abs=0.0051)  # shown to 2 decimals
    assert popup.locator(".title").inner_text() == "Radar reflectivity (composite)"
    assert popup.locator(".time").inner_text() == page.locator("#time-label").inner_text()
    page.wait_for_function("() => getComputedStyle(document.querySelector('.leaflet-popup')).opacity === '1'")  # faded in
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer.png"))
    viewer.assert_clean()


def test_phone_viewport_keeps_the_controls_on_screen(browser: Browser, server: LiveServer) -> None:
    width, height = 390, 844
    viewer, context = open_viewer(
        browser, server, viewport={"width": width, "height": height}, device_scale_factor=3, is_mobile=True, has_touch=True
    )
    try:
        page = viewer.page
        assert page.evaluate("() => [window.innerWidth, window.innerHeight]") == [width, height]
        for selector in ("#layer-select", "#play", "#time-slider"):
            control = page.locator(selector)
            assert control.is_visible() and control.is_enabled(), selector
            box = control.bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
            assert box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, (selector, box)
            assert box["width"] >= 24 and box["height"] >= 16, (selector, box)  # usable, not squashed to nothing
        page.locator("#play").tap()
        assert page.locator("#play").get_attribute("aria-label") == "Pause animation"
        viewer.assert_clean()
    finally:
        context.close()
