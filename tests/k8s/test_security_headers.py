"""The viewer still works under the response headers the Traefik `headers` Middleware adds.

A Content-Security-Policy that blocks the viewer's own scripts, styles, API calls or
the basemap would only show up in production. Here Debian's headless Chromium
loads the viewer from the real app with those headers (read from k8s/base) added to
every response, and any CSP violation fails the test.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import ingest_file
from tests.conftest import T0, LiveServer, minutes, radar_file
from tests.k8s import support
from tileserver.core.layers import LAYERS
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Store

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
BASEMAP = re.compile(r"^https://tile\.openstreetmap\.org/")
# A 1x1 transparent PNG, the basemap's stand-in (no network here).
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


def middleware_headers() -> dict[str, str]:
    """The response headers Traefik's `headers` middleware adds, from its spec."""
    (spec,) = [m["spec"]["headers"] for m in support.of_kind(support.base_raw_resources(), "Middleware") if "headers" in m["spec"]]
    headers = {}
    if spec.get("contentSecurityPolicy"):
        headers["content-security-policy"] = spec["contentSecurityPolicy"]
    if spec.get("frameDeny"):
        headers["x-frame-options"] = "DENY"
    if spec.get("contentTypeNosniff"):
        headers["x-content-type-options"] = "nosniff"
    if spec.get("referrerPolicy"):
        headers["referrer-policy"] = spec["referrerPolicy"]
    if spec.get("permissionsPolicy"):
        headers["permissions-policy"] = spec["permissionsPolicy"]
    for name, value in spec.get("customResponseHeaders", {}).items():
        if value:
            headers[name.lower()] = value
    return headers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("csp")
    store = Store(open_storage(str(folder / "store"), create=True))
    for step in (0, 5):
        ingest_file(store, radar_file(folder, T0 + minutes(step), shift_cols=step), LAYERS["reflectivity"])
    with LiveServer(Settings(store=str(folder / "store"), catalog_ttl_s=0.0)) as live:
        yield live


def test_the_csp_covers_the_viewer(server: LiveServer) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing (make setup-test installs Debian's chromium)")
    from playwright.sync_api import Route, sync_playwright

    headers = middleware_headers()
    assert "content-security-policy" in headers
    console: list[str] = []
    local_responses: list[tuple[str, int]] = []

    def local(route: Route) -> None:
        response = route.fetch()
        local_responses.append((route.request.url, response.status))
        route.fulfill(response=response, headers={**response.headers, **headers})

    def basemap(route: Route) -> None:
        route.fulfill(status=200, content_type="image/png", body=PNG)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 700})
            page.set_default_timeout(20_000)
            page.route(server.url + "/**", local)
            page.route(BASEMAP, basemap)
            page.route(re.compile(rf"^(?!{re.escape(server.url)}/|https://tile\.openstreetmap\.org/)"), lambda route: route.abort())
            page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
            page.add_init_script(RECORD_VIOLATIONS)
            page.goto(server.url + "/")
            page.wait_for_function("() => document.querySelectorAll('img.leaflet-tile-loaded').length > 0")
            page.wait_for_load_state("networkidle")
            violations = page.evaluate("() => window.__csp")
        finally:
            browser.close()
    assert violations == [] and console == [], f"blocked by the CSP: {violations[:5]} {console[:5]}"
    paths = [url[len(server.url):] for url, status in local_responses if status == 200]
    assert any(p.startswith("/tiles/reflectivity/") for p in paths), "the viewer's script never asked for radar tiles"
    assert any(p.startswith("/vendor/leaflet/") for p in paths)
