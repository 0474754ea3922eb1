"""The server started with the Deployment's own arguments, behind a stand-in for Traefik.

The stand-in does what the IngressRoute and Middlewares in k8s/base say, read from
the files: match the rule, redirect the bare prefix, strip the prefix, forward with
the X-Forwarded-* headers Traefik sets. Then the public URLs the API hands out, and
the viewer's relative asset URLs, must lead back to the server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from ingest.pipeline import ingest_file
from tests.conftest import T0, free_port, radar_file
from tests.k8s import support
from tests.k8s.support import of_kind, one
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Store

CLIENT_IP = "203.0.113.7"


@dataclass
class Traefik:
    """The route and middlewares of k8s/base, applied to a public URL."""

    rule: str
    host: str
    strip: list[str]
    redirect: tuple[re.Pattern[str], str]
    upstream: str

    def get(self, url: str) -> httpx.Response:
        parts = urlsplit(url)
        path = parts.path or "/"
        if not support.traefik_rule_matches(self.rule, parts.hostname or "", path):
            return httpx.Response(404, text="404 page not found (no router)")
        regex, replacement = self.redirect
        if regex.search(url):
            return httpx.Response(301, headers={"Location": regex.sub(replacement, url)})
        for prefix in self.strip:
            if path.startswith(prefix):
                path = path[len(prefix):] or "/"
                break
        forwarded_prefix = self.strip[0] if self.strip else ""
        headers = {
            "Host": parts.netloc,
            "X-Forwarded-Proto": parts.scheme,
            "X-Forwarded-Host": parts.netloc,
            "X-Forwarded-Port": "443" if parts.scheme == "https" else "80",
            "X-Forwarded-Prefix": forwarded_prefix,
            "X-Forwarded-For": CLIENT_IP,
            "X-Real-Ip": CLIENT_IP,
        }
        target = self.upstream + path + (f"?{parts.query}" if parts.query else "")
        return httpx.get(target, headers=headers, timeout=30, follow_redirects=False)


@pytest.fixture(scope="module")
def deployment() -> support.Workload:
    return support.server(support.base_raw_resources())


@pytest.fixture(scope="module")
def pod(deployment: support.Workload, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`wxtiles serve` with the container's args and the ConfigMap's settings; yields its URL."""
    folder = tmp_path_factory.mktemp("pod")
    store = folder / "store"
    ingest_file(Store(open_storage(str(store), create=True)), radar_file(folder, T0), LAYERS["reflectivity"])
    port = free_port()
    args = []
    for arg in deployment.main["args"]:
        arg = re.sub(r"^--host=.*", "--host=127.0.0.1", arg)  # loopback only here
        arg = re.sub(r"^--port=.*", f"--port={port}", arg)
        args.append(arg)
    config = support.config_map(support.base_raw_resources())["data"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WXTILES_")}
    env.update(config)
    env.update({"WXTILES_STORE": str(store), "CPL_TMPDIR": str(folder), "WXTILES_LOG_LEVEL": "warning"})
    process = subprocess.Popen(
        [sys.executable, "-m", "tileserver.cli", *args], env=env, cwd=folder,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"wxtiles serve {' '.join(args)} did not start: {process.stderr.read() if process.stderr else ''}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="module")
def traefik(pod: str) -> Traefik:
    resources = support.base_raw_resources()
    (route,) = one(resources, "IngressRoute", "wxtiles")["spec"]["routes"]
    (host,) = support.traefik_rule_hosts(route["match"])
    middlewares = {m["metadata"]["name"]: m["spec"] for m in of_kind(resources, "Middleware")}
    used = [middlewares[m["name"]] for m in route["middlewares"]]
    strip = [p for spec in used if "stripPrefix" in spec for p in spec["stripPrefix"]["prefixes"]]
    (redirect,) = [spec["redirectRegex"] for spec in used if "redirectRegex" in spec]
    replacement = re.sub(r"\$\{(\d+)\}", r"\\\1", redirect["replacement"])
    return Traefik(route["match"], host, strip, (re.compile(redirect["regex"]), replacement), pod)


class PageAssets(HTMLParser):
    """The relative script, stylesheet and image URLs of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for key in ("src", "href"):
            value = found.get(key)
            if value and tag in ("script", "link", "img") and not value.startswith(("data:", "http:", "https:")):
                self.urls.append(value)


def test_probes_reach_the_pod_without_the_prefix(pod: str, deployment: support.Workload) -> None:
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = deployment.main[probe]["httpGet"]["path"]
        assert httpx.get(pod + path, timeout=10).status_code == 200, probe


def test_the_bare_prefix_redirects_to_the_viewer(traefik: Traefik) -> None:
    response = traefik.get(f"https://{traefik.host}/wx")
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{traefik.host}/wx/"


def test_the_viewer_and_its_assets_load_under_the_prefix(traefik: Traefik) -> None:
    page_url = f"https://{traefik.host}/wx/"
    page = traefik.get(page_url)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    parser = PageAssets()
    parser.feed(page.text)
    assert any("leaflet" in u for u in parser.urls), parser.urls
    for relative in parser.urls:
        url = urljoin(page_url, relative)
        assert urlsplit(url).path.startswith("/wx/"), f"{relative} leaves the prefix"
        assert traefik.get(url).status_code == 200, url


def test_api_urls_are_public_https_urls_under_the_prefix(traefik: Traefik) -> None:
    base = f"https://{traefik.host}/wx"
    layer = traefik.get(f"{base}/api/layers/reflectivity").json()
    assert layer["tiles"].startswith(f"{base}/tiles/reflectivity/"), layer["tiles"]
    assert layer["legend"].startswith(f"{base}/api/colormaps/"), layer["legend"]
    legend = traefik.get(layer["legend"])
    assert legend.status_code == 200 and legend.headers["content-type"] == "image/png"
    tile = traefik.get(layer["tiles"].format(time="latest", z=3, x=1, y=2))
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/png"
    assert tile.headers["X-Frame-Time"] == layer["latest"]


def test_other_hosts_and_paths_are_not_routed(traefik: Traefik) -> None:
    assert traefik.get(f"https://{traefik.host}/healthz").status_code == 404
    assert traefik.get("https://elsewhere.example.org/wx/api/layers").status_code == 404


def test_without_the_strip_the_app_would_not_answer(pod: str) -> None:
    """The app's routes are at /: the prefix must be stripped, and comes back as a header."""
    assert httpx.get(pod + "/wx/api/layers", timeout=10).status_code == 404
    assert httpx.get(pod + "/api/layers", timeout=10).status_code == 200


def test_direct_access_gets_working_unprefixed_urls(pod: str) -> None:
    """kubectl port-forward, or a probe: no proxy headers, so plain URLs that work on the pod."""
    plain = httpx.get(pod + "/api/layers/reflectivity", timeout=10).json()
    assert plain["tiles"].startswith(pod + "/tiles/reflectivity/")
    assert httpx.get(plain["legend"], timeout=10).status_code == 200

