"""Every endpoint over real HTTP on loopback: success paths, error paths, caching."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import mercantile
import numpy as np
import pytest
from PIL import Image

from ingest.pipeline import ingest_file
from tests.conftest import T0, minutes, radar_file
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Store

RADAR = LAYERS["reflectivity"]
STORM = mercantile.tile(-100.0, 43.0, 4)  # over the strong storm of radar_grid()
EMPTY = mercantile.tile(-100.0, -30.0, 6)  # far outside the data


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from tests.conftest import LiveServer
    from tileserver.core.settings import Settings

    folder = tmp_path_factory.mktemp("http")
    store = Store(open_storage(str(folder / "store"), create=True))
    for step in (0, 5, 10):
        ingest_file(store, radar_file(folder, T0 + minutes(step), shift_cols=step), RADAR)
    with LiveServer(Settings(store=str(folder / "store"), catalog_ttl_s=0.0)) as live:
        with httpx.Client(base_url=live.url, timeout=20) as client:
            yield client


def get(client: httpx.Client, url: str, **kwargs: object) -> httpx.Response:
    return client.get(url, **kwargs)  # type: ignore[arg-type]


def tile_url(time: str, tile: mercantile.Tile = STORM, suffix: str = ".png") -> str:
    return f"/tiles/reflectivity/{time}/{tile.z}/{tile.x}/{tile.y}{suffix}"


def test_timestamped_tile_is_an_immutable_palette_png(server: httpx.Client) -> None:
    response = get(server, tile_url("2026-11-27T21:10:00Z"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["etag"].startswith('"')
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "P" and image.size == (256, 256)
    rgba = np.asarray(image.convert("RGBA"))
    assert (rgba[..., 3] == 0).any() and (rgba[..., 3] == 255).any()
    # The storm core (58 dBZ) is drawn in the 55-dBZ class colour #d40000.
    assert ((rgba[..., 0] == 212) & (rgba[..., 1] == 0) & (rgba[..., 2] == 0)).any()


def test_retina_tile_is_512px(server: httpx.Client) -> None:
    response = get(server, tile_url("latest", suffix="@2x.png"))
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (512, 512)


def test_latest_has_short_max_age_and_names_the_frame(server: httpx.Client) -> None:
    response = get(server, tile_url("latest"))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["x-frame-time"] == "2026-11-27T21:10:00Z"
    fixed = get(server, tile_url("2026-11-27T21:10:00Z"))
    assert fixed.content == response.content


def test_if_none_match_gives_304(server: httpx.Client) -> None:
    first = get(server, tile_url("2026-11-27T21:05:00Z"))
    again = get(server, tile_url("2026-11-27T21:05:00Z"), headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    other = get(server, tile_url("2026-11-27T21:00:00Z"))
    assert other.headers["etag"] != first.headers["etag"]


def test_empty_and_outside_tiles_share_one_transparent_png(server: httpx.Client) -> None:
    outside = get(server, tile_url("latest", EMPTY))
    no_echo = get(server, tile_url("latest", mercantile.tile(-70.0, 25.0, 7)))
    assert outside.status_code == no_echo.status_code == 200
    assert outside.content == no_echo.content
    alpha = np.asarray(Image.open(io.BytesIO(outside.content)).convert("RGBA"))[..., 3]
    assert alpha.max() == 0


def test_npy_tile_has_float_values_nan_and_no_echo(server: httpx.Client) -> None:
    response = get(server, tile_url("latest", STORM, ".npy"))
    assert response.status_code == 200
    values = np.load(io.BytesIO(response.content))
    assert values.dtype == np.float32 and values.shape == (256, 256)
    assert np.isnan(values).any()  # no coverage (the western strip and outside)
    assert np.isneginf(values).any()  # no echo
    assert np.nanmax(values[np.isfinite(values)]) > 30


def test_colormap_override(server: httpx.Client) -> None:
    smooth = get(server, tile_url("latest") + "?colormap=reflectivity-smooth")
    assert smooth.status_code == 200
    assert Image.open(io.BytesIO(smooth.content)).mode == "RGBA"
    viridis = get(server, tile_url("latest") + "?colormap=viridis")
    assert viridis.status_code == 200
    default = get(server, tile_url("latest"))
    assert len({smooth.headers["etag"], viridis.headers["etag"], default.headers["etag"]}) == 3


@pytest.mark.parametrize(
    ("url", "status", "needle"),
    [
        ("/tiles/reflectivity/latest/23/0/0.png", 400, "zoom"),
        ("/tiles/reflectivity/latest/3/8/0.png", 400, "does not exist"),
        ("/tiles/reflectivity/latest/3/0/8.png", 400, "does not exist"),
        ("/tiles/reflectivity/latest/-1/0/0.png", 400, "whole numbers"),
        ("/tiles/reflectivity/latest/3/0/0.jpg", 400, "tile address"),
        ("/tiles/reflectivity/latest/3/0/0@3x.png", 400, "tile address"),
        ("/tiles/reflectivity/yesterday/3/0/0.png", 400, "ISO 8601"),
        ("/tiles/reflectivity/2026-11-27T21:00:00/3/0/0.png", 400, "time zone"),
        ("/tiles/reflectivity/2026-11-27T21:03:00Z/3/0/0.png", 404, "no frame"),
        ("/tiles/reflectivity/latest/3/0/0.png?run=soon", 400, "run"),
        ("/tiles/nosuch/latest/3/0/0.png", 404, "unknown layer"),
        ("/tiles/temperature-2m/latest/3/0/0.png", 404, "no frames yet"),
        ("/tiles/reflectivity/latest/3/0/0.png?colormap=nosuch", 400, "unknown colormap"),
        ("/tiles/reflectivity/latest/3/0/0.png?colormap=temperature", 400, "degC"),
        ("/tiles/reflectivity/latest/3/0/0.png?colormap=../../etc", 400, "colormap"),
        ("/api/layers/nosuch", 404, "unknown layer"),
        ("/api/layers/reflectivity/point?lon=-100", 400, "lat is required"),
        ("/api/layers/reflectivity/point?lon=abc&lat=40", 400, "not a number"),
        ("/api/layers/reflectivity/point?lon=200&lat=40", 400, "out of range"),
        ("/api/layers/reflectivity/point?lon=-100&lat=89", 400, "out of range"),
        ("/api/layers/reflectivity/point?lon=nan&lat=40", 400, "out of range"),
        ("/api/layers/reflectivity/point?lon=-100&lat=40&time=2026-11-27T20:00:00Z", 404, "no frame"),
        ("/api/colormaps/nosuch", 404, "unknown colormap"),
        ("/api/colormaps/nosuch/legend.png", 404, "unknown colormap"),
        ("/api/colormaps/nws-reflectivity/legend.png?width=0", 400, "width"),
        ("/api/colormaps/nws-reflectivity/legend.png?height=99999", 400, "height"),
        ("/api/colormaps/viridis/legend.png", 400, "normalised"),
        ("/no/such/route", 404, ""),
    ],
)
def test_bad_requests_get_json_errors(server: httpx.Client, url: str, status: int, needle: str) -> None:
    response = get(server, url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert needle in response.json()["error"]


def test_post_is_refused_with_json(server: httpx.Client) -> None:
    response = server.post("/api/layers")
    assert response.status_code == 405
    assert "error" in response.json()


def test_layers_metadata(server: httpx.Client) -> None:
    body = get(server, "/api/layers").json()
    ids = [layer["id"] for layer in body["layers"]]
    assert ids == list(LAYERS)  # every layer of the registry, in its order
    assert {layer["model"] for layer in body["layers"]} == {None, "hrrr", "gfs"}
    radar = get(server, "/api/layers/reflectivity").json()
    assert radar["units"] == "dBZ" and radar["kind"] == "observed" and radar["colormap"] == "nws-reflectivity"
    assert radar["frames"] == ["2026-11-27T21:00:00Z", "2026-11-27T21:05:00Z", "2026-11-27T21:10:00Z"]
    assert radar["latest"] == "2026-11-27T21:10:00Z"
    assert radar["bounds"] == pytest.approx([-130.0, 20.0, -60.0, 55.0])
    assert radar["minzoom"] == 0 and radar["maxzoom"] == 4
    template = radar["tiles"]
    assert template.endswith("/tiles/reflectivity/{time}/{z}/{x}/{y}.png") and template.startswith("http://127.0.0.1:")
    # The template works as a client would use it.
    url = template.replace("{time}", radar["latest"]).replace("{z}", str(STORM.z)).replace("{x}", str(STORM.x)).replace("{y}", str(STORM.y))
    assert httpx.get(url).status_code == 200
    empty = get(server, "/api/layers/temperature-2m").json()
    assert empty["frames"] == [] and empty["latest"] is None and empty["runs"] == []


def test_point_values(server: httpx.Client) -> None:
    storm = get(server, "/api/layers/reflectivity/point", params={"lon": -100.0, "lat": 43.0, "time": "2026-11-27T21:00:00Z"}).json()
    assert storm["status"] == "ok" and storm["units"] == "dBZ" and storm["value"] > 45
    assert storm["time"] == "2026-11-27T21:00:00Z"
    clear = get(server, "/api/layers/reflectivity/point", params={"lon": -75.0, "lat": 25.0}).json()
    assert clear == {**clear, "status": "no-echo", "value": None, "time": "2026-11-27T21:10:00Z"}
    uncovered = get(server, "/api/layers/reflectivity/point", params={"lon": -129.5, "lat": 40.0}).json()
    assert uncovered["status"] == "no-coverage" and uncovered["value"] is None
    outside = get(server, "/api/layers/reflectivity/point", params={"lon": 10.0, "lat": 50.0}).json()
    assert outside["status"] == "no-coverage"


def test_colormap_endpoints(server: httpx.Client) -> None:
    names = [c["name"] for c in get(server, "/api/colormaps").json()["colormaps"]]
    assert {"nws-reflectivity", "precip-rate", "temperature", "wind-speed", "viridis"} <= set(names)
    nws = get(server, "/api/colormaps/nws-reflectivity").json()
    assert nws["units"] == "dBZ" and nws["stops"][0]["value"] == 5
    legend = get(server, "/api/colormaps/nws-reflectivity/legend.png?width=400&height=60")
    assert legend.status_code == 200 and Image.open(io.BytesIO(legend.content)).size == (400, 60)
    labelled = get(server, "/api/colormaps/viridis/legend.png?layer=temperature-2m")
    assert labelled.status_code == 200


def test_health_and_readiness(server: httpx.Client) -> None:
    assert get(server, "/healthz").json() == {"status": "ok"}
    ready = get(server, "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_cors_and_head(server: httpx.Client) -> None:
    response = get(server, tile_url("latest"), headers={"Origin": "https://example.org"})
    assert response.headers["access-control-allow-origin"] == "*"
    head = server.head(tile_url("latest"))
    assert head.status_code == 200 and head.headers["etag"]


def test_frontend_is_served(server: httpx.Client) -> None:
    page = get(server, "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert get(server, "/app.js").status_code == 200
    assert get(server, "/package.json").status_code == 404


def test_store_unavailable_gives_503_then_recovers(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    folder = tmp_path / "store"
    server = live_server_for(str(folder))
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200
        store = Store(open_storage(str(folder), create=True))
        ingest_file(store, radar_file(tmp_path, T0), RADAR)
        assert client.get("/readyz").status_code == 200
        assert client.get(tile_url("latest")).status_code == 200


def test_pruned_frame_is_404_not_500(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    folder = tmp_path / "store"
    store = Store(open_storage(str(folder), create=True))
    frame = ingest_file(store, radar_file(tmp_path, T0), RADAR).frame
    server = live_server_for(str(folder), catalog_ttl_s=3600.0)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/api/layers/reflectivity").status_code == 200  # catalog now cached
        store.storage.delete(frame.key)  # as prune does after dropping the entry
        response = client.get(tile_url("2026-11-27T21:00:00Z", mercantile.tile(-100, 43, 5)))
        assert response.status_code == 404 and "no longer available" in response.json()["error"]


def test_corrupt_frame_is_502_and_other_frames_serve(tmp_path: Path, live_server_for) -> None:  # noqa: ANN001
    folder = tmp_path / "store"
    store = Store(open_storage(str(folder), create=True))
    bad = ingest_file(store, radar_file(tmp_path, T0), RADAR).frame
    ingest_file(store, radar_file(tmp_path, T0 + minutes(5), 5), RADAR)
    Path(store.storage.gdal_path(bad.key)).write_bytes(b"II*\x00garbage" * 10)
    server = live_server_for(str(folder))
    with httpx.Client(base_url=server.url) as client:
        broken = client.get(tile_url("2026-11-27T21:00:00Z"))
        assert broken.status_code == 502 and "cannot be read" in broken.json()["error"]
        assert client.get(tile_url("2026-11-27T21:05:00Z")).status_code == 200


def test_tile_cache_is_bounded_in_bytes(tmp_path: Path) -> None:
    from tileserver.service.params import tile_params
    from tileserver.service import TileService
    from tileserver.core.settings import Settings

    store = Store(open_storage(str(tmp_path / "store"), create=True))
    ingest_file(store, radar_file(tmp_path, T0), RADAR)
    for cache_mb in (0, 1):
        service = TileService(store, Settings(store=str(tmp_path / "store"), cache_mb=cache_mb))
        for z in range(3, 9):
            tile = mercantile.tile(-100.0, 43.0, z)
            for suffix in (".npy", ".png"):
                request = tile_params("reflectivity", "latest", str(z), str(tile.x), f"{tile.y}{suffix}", {})
                frame, etag, cc = service.tiles.prepare_tile(request)
                assert service.tiles.render_tile(request, frame, etag)
        assert service.tiles.cache.currsize <= cache_mb * 2**20
        # 262 kB .npy tiles: a 1 MB cache holds a few, never all six.
        assert len(service.tiles.cache) < 12 if cache_mb else len(service.tiles.cache) == 0
