"""GIS interop with real clients: OWSLib (WMTS), GDAL (XYZ and WMTS), TileJSON rules, proxies."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import httpx
import jsonschema
import mercantile
import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.windows import Window

from ingest.demo import samples
from ingest.pipeline import ingest_file
from tests.conftest import T0, LiveServer
from tests.fixtures.storms import ingest_steps
from tileserver.core.layers import LAYERS
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Store

RADAR = LAYERS["reflectivity"]
OLD_RUN, NEW_RUN = T0 - timedelta(hours=2), T0 - timedelta(hours=1)
SHARED_VALID = "2026-11-27T20:00:00Z"  # OLD_RUN + 1 h = NEW_RUN + 0 h
TILE = mercantile.tile(-100.0, 42.0, 5)
# TileJSON 3.0.0's schema (mapbox/tilejson-spec 3.0.0/schema.json), whose
# "vector_layers" requirement applies to vector tiles only (README: "REQUIRED" for
# vector tilesets); this is a raster tileset, so it is not required here.
TILEJSON_SCHEMA = {
    "type": "object",
    "required": ["tilejson", "tiles"],
    "properties": {
        "tilejson": {"type": "string", "pattern": r"\d+\.\d+\.\d+\w?[\w\d]*"},
        "tiles": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "attribution": {"type": "string"},
        "bounds": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
        "center": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
        "description": {"type": "string"},
        "fillzoom": {"type": "integer", "minimum": 0, "maximum": 30},
        "legend": {"type": "string"},
        "maxzoom": {"type": "integer", "minimum": 0, "maximum": 30},
        "minzoom": {"type": "integer", "minimum": 0, "maximum": 30},
        "name": {"type": "string"},
        "scheme": {"enum": ["xyz", "tms"]},
        "version": {"type": "string", "pattern": r"\d+\.\d+\.\d+\w?[\w\d]*"},
    },
}


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("gis")
    store = Store(open_storage(str(folder / "store"), create=True))
    ingest_steps(store, folder, range(3))
    for lead in (0, 1):
        path = folder / f"hrrr.t18z.wrfsfcf{lead:02d}.grib2"
        samples.write_hrrr_grib2(path, T0 - timedelta(hours=3), timedelta(hours=lead), shape=(150, 240))
        ingest_file(store, path, LAYERS["temperature-2m"])
    # Two HRRR runs with a valid time in common: the run picks which frame is drawn.
    for run, lead in ((OLD_RUN, 1), (NEW_RUN, 0), (NEW_RUN, 1)):
        path = folder / f"hrrr.t{run:%H}z.wrfsfcf{lead:02d}.grib2"
        samples.write_hrrr_grib2(path, run, timedelta(hours=lead), shape=(150, 240), seed=run.hour * 10 + lead)
        ingest_file(store, path, LAYERS["hrrr-temperature-2m"])
    return store.storage.url


@pytest.fixture(scope="module")
def server(store_url: str):  # noqa: ANN201
    with LiveServer(Settings(store=store_url, catalog_ttl_s=0.0)) as live:
        yield live


def test_tilejson_follows_the_spec_and_its_urls_work(server: LiveServer) -> None:
    doc = httpx.get(f"{server.url}/tiles/reflectivity/tilejson.json").json()
    jsonschema.validate(doc, TILEJSON_SCHEMA)
    assert doc["tilejson"] == "3.0.0" and doc["scheme"] == "xyz"
    west, south, east, north = doc["bounds"]
    assert -180 <= west < east <= 180 and -85.06 <= south < north <= 85.06
    assert doc["minzoom"] <= doc["center"][2] <= doc["maxzoom"]
    assert west <= doc["center"][0] <= east and south <= doc["center"][1] <= north
    assert doc["tiles"] == [f"{server.url}/tiles/reflectivity/latest/{{z}}/{{x}}/{{y}}.png"]
    assert "legend.png" in doc["legend"] and doc["attribution"]
    url = doc["tiles"][0].format(z=TILE.z, x=TILE.x, y=TILE.y)
    assert httpx.get(url).status_code == 200
    pinned = httpx.get(f"{server.url}/tiles/reflectivity/tilejson.json", params={"time": "2026-11-27T21:05:00Z", "colormap": "reflectivity-smooth"}).json()
    assert pinned["tiles"][0].endswith("/tiles/reflectivity/2026-11-27T21:05:00Z/{z}/{x}/{y}.png?colormap=reflectivity-smooth")
    for query, status in (({"time": "2026-11-27T21:03:00Z"}, 404), ({"time": "soon"}, 400), ({"colormap": "temperature"}, 400)):
        response = httpx.get(f"{server.url}/tiles/reflectivity/tilejson.json", params=query)
        assert response.status_code == status and "error" in response.json()


def test_owslib_reads_capabilities_times_and_tiles(server: LiveServer) -> None:
    from owslib.wmts import WebMapTileService

    wmts = WebMapTileService(f"{server.url}/wmts/1.0.0/WMTSCapabilities.xml")
    assert {"reflectivity", "precip-rate", "temperature-2m", "wind-speed-10m"} <= set(wmts.contents)
    layer = wmts.contents["reflectivity"]
    info = httpx.get(f"{server.url}/api/layers/reflectivity").json()
    time = layer.dimensions["Time"]
    assert time["values"] == info["frames"] + [n["time"] for n in info["nowcast"]]
    assert time["default"] == info["latest"] == "2026-11-27T21:10:00Z"
    assert all(value.endswith("Z") for value in time["values"])
    assert "GoogleMapsCompatible" in layer.tilematrixsetlinks
    tms = wmts.tilematrixsets["GoogleMapsCompatible"]
    assert tms.tilematrix["5"].matrixwidth == 32
    # RESTful template with {Time}.
    templates = [r["template"] for r in layer.resourceURLs]
    assert any("{Time}" in t and "{TileMatrix}" in t for t in templates)
    reference = httpx.get(f"{server.url}/tiles/reflectivity/2026-11-27T21:25:00Z/{TILE.z}/{TILE.x}/{TILE.y}.png").content
    kvp = wmts.gettile(layer="reflectivity", tilematrixset="GoogleMapsCompatible", tilematrix="5", row=TILE.y, column=TILE.x, format="image/png", time="2026-11-27T21:25:00Z")
    assert kvp.read() == reference
    restful = templates[0].replace("{Time}", "2026-11-27T21:25:00Z").replace("{TileMatrix}", "5").replace("{TileRow}", str(TILE.y)).replace("{TileCol}", str(TILE.x))
    assert httpx.get(restful).content == reference


def test_wmts_model_run_dimension(server: LiveServer) -> None:
    """Forecast layers advertise the model run (DIM_REFERENCE_TIME, default the newest) beside Time;
    KVP and RESTful GetTile honour it."""
    from owslib.wmts import WebMapTileService

    wmts = WebMapTileService(f"{server.url}/wmts/1.0.0/WMTSCapabilities.xml")
    layer = wmts.contents["hrrr-temperature-2m"]
    runs = layer.dimensions["DIM_REFERENCE_TIME"]
    assert runs["values"] == ["2026-11-27T19:00:00Z", "2026-11-27T20:00:00Z"] and runs["default"] == "2026-11-27T20:00:00Z"
    assert "DIM_REFERENCE_TIME" not in wmts.contents["reflectivity"].dimensions
    tile = mercantile.tile(-97.0, 38.0, 5)
    by_run = {}
    for run in runs["values"]:
        reference = httpx.get(f"{server.url}/tiles/hrrr-temperature-2m/{SHARED_VALID}/{tile.z}/{tile.x}/{tile.y}.png", params={"run": run})
        assert reference.status_code == 200
        kvp = wmts.gettile(layer="hrrr-temperature-2m", tilematrixset="GoogleMapsCompatible", tilematrix="5", row=tile.y,
                           column=tile.x, format="image/png", time=SHARED_VALID, DIM_REFERENCE_TIME=run)
        assert kvp.read() == reference.content
        template = layer.resourceURLs[0]["template"]
        restful = (template.replace("{Time}", SHARED_VALID).replace("{DIM_REFERENCE_TIME}", run).replace("{TileMatrix}", "5")
                   .replace("{TileRow}", str(tile.y)).replace("{TileCol}", str(tile.x)))
        assert httpx.get(restful).content == reference.content
        by_run[run] = reference.content
    assert len(set(by_run.values())) == 2  # two runs, two different forecasts for the same hour
    # No run given, or "default": the newest run.
    newest = wmts.gettile(layer="hrrr-temperature-2m", tilematrixset="GoogleMapsCompatible", tilematrix="5", row=tile.y,
                          column=tile.x, format="image/png", time=SHARED_VALID, DIM_REFERENCE_TIME="default")
    assert newest.read() == by_run[runs["default"]]
    # GDAL takes each dimension's default: the newest run's frame at the default (latest) time.
    tile = mercantile.tile(-97.0, 38.0, 7)  # inside the layer's bounds, which GDAL clips to
    name = f"WMTS:{server.url}/wmts/1.0.0/WMTSCapabilities.xml,layer=hrrr-temperature-2m,tilematrixset=GoogleMapsCompatible,tilematrix=7"
    with rasterio.Env(GDAL_HTTP_TIMEOUT="20"), rasterio.open(name) as dataset:
        left, bottom, right, top = mercantile.xy_bounds(tile)
        col, row = ~dataset.transform * (left, top)
        window = dataset.read(window=Window(round(col), round(row), 256, 256))
    latest = httpx.get(f"{server.url}/tiles/hrrr-temperature-2m/latest/{tile.z}/{tile.x}/{tile.y}.png", params={"run": runs["default"]}).content
    ours = np.asarray(Image.open(io.BytesIO(latest)).convert("RGBA"))
    np.testing.assert_array_equal(np.moveaxis(window, 0, -1)[..., :4], ours)


def test_tilejson_takes_a_model_run(server: LiveServer) -> None:
    body = httpx.get(f"{server.url}/tiles/hrrr-temperature-2m/tilejson.json", params={"run": "2026-11-27T19:00:00Z", "time": SHARED_VALID}).json()
    jsonschema.validate(body, TILEJSON_SCHEMA)
    assert body["tiles"][0] == f"{server.url}/tiles/hrrr-temperature-2m/{SHARED_VALID}/{{z}}/{{x}}/{{y}}.png?run=2026-11-27T19%3A00%3A00Z"
    assert body["run"] == "2026-11-27T19:00:00Z" and body["frames"] == [SHARED_VALID]
    tile = mercantile.tile(-97.0, 38.0, 5)
    url = body["tiles"][0].replace("{z}", "5").replace("{x}", str(tile.x)).replace("{y}", str(tile.y))
    assert httpx.get(url).content == httpx.get(f"{server.url}/tiles/hrrr-temperature-2m/{SHARED_VALID}/5/{tile.x}/{tile.y}.png?run=2026-11-27T19:00:00Z").content
    missing = httpx.get(f"{server.url}/tiles/hrrr-temperature-2m/tilejson.json", params={"run": "2026-11-27T05:00:00Z"})
    assert missing.status_code == 404 and "error" in missing.json()
    observed = httpx.get(f"{server.url}/tiles/reflectivity/tilejson.json", params={"run": "2026-11-27T19:00:00Z"})
    assert observed.status_code == 400 and "forecast layers" in observed.json()["error"]


def test_gdal_reads_our_xyz_tiles_with_the_right_georeferencing(server: LiveServer, tmp_path: Path) -> None:
    zoom = 5
    xml = f"""<GDAL_WMS><Service name="TMS"><ServerUrl>{server.url}/tiles/reflectivity/2026-11-27T21:10:00Z/${{z}}/${{x}}/${{y}}.png</ServerUrl></Service>
<DataWindow><UpperLeftX>-20037508.34</UpperLeftX><UpperLeftY>20037508.34</UpperLeftY><LowerRightX>20037508.34</LowerRightX><LowerRightY>-20037508.34</LowerRightY>
<TileLevel>{zoom}</TileLevel><TileCountX>1</TileCountX><TileCountY>1</TileCountY><YOrigin>top</YOrigin></DataWindow>
<Projection>EPSG:3857</Projection><BlockSizeX>256</BlockSizeX><BlockSizeY>256</BlockSizeY><BandsCount>4</BandsCount><Cache/></GDAL_WMS>"""
    path = tmp_path / "xyz.xml"
    path.write_text(xml)
    with rasterio.Env(GDAL_HTTP_TIMEOUT="20"), rasterio.open(path) as dataset:
        assert dataset.crs.to_epsg() == 3857
        assert dataset.width == 256 * 2**zoom
        left, bottom, right, top = mercantile.xy_bounds(TILE)
        col, row = ~dataset.transform * (left, top)
        assert (col, row) == pytest.approx((TILE.x * 256, TILE.y * 256), abs=1e-6)
        window = dataset.read(window=Window(TILE.x * 256, TILE.y * 256, 256, 256))
    ours = np.asarray(Image.open(io.BytesIO(httpx.get(f"{server.url}/tiles/reflectivity/2026-11-27T21:10:00Z/{TILE.z}/{TILE.x}/{TILE.y}.png").content)).convert("RGBA"))
    np.testing.assert_array_equal(np.moveaxis(window, 0, -1), ours)
    assert ours[..., 3].any()


def test_gdal_opens_our_wmts(server: LiveServer) -> None:
    name = f"WMTS:{server.url}/wmts/1.0.0/WMTSCapabilities.xml,layer=reflectivity,tilematrixset=GoogleMapsCompatible,tilematrix=5"
    with rasterio.Env(GDAL_HTTP_TIMEOUT="20"), rasterio.open(name) as dataset:
        assert dataset.crs.to_epsg() == 3857
        # Zoom 5 resolution, clipped by GDAL to the layer's WGS84BoundingBox.
        assert dataset.res[0] == pytest.approx(2 * 20037508.3427892 / (256 * 32))
        left, bottom, right, top = mercantile.xy_bounds(TILE)
        col, row = ~dataset.transform * (left, top)
        assert col == pytest.approx(round(col), abs=1e-6) and row == pytest.approx(round(row), abs=1e-6)
        window = dataset.read(window=Window(round(col), round(row), 256, 256))
    # The default time is the latest observation.
    ours = np.asarray(Image.open(io.BytesIO(httpx.get(f"{server.url}/tiles/reflectivity/2026-11-27T21:10:00Z/{TILE.z}/{TILE.x}/{TILE.y}.png").content)).convert("RGBA"))
    np.testing.assert_array_equal(np.moveaxis(window, 0, -1)[..., :4], ours)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("/wmts?SERVICE=WMTS&REQUEST=GetTile&LAYER=reflectivity", "TILEMATRIX"),
        ("/wmts?SERVICE=WMS&REQUEST=GetCapabilities", "SERVICE"),
        ("/wmts?REQUEST=DescribeDomains", "REQUEST"),
        ("/wmts?REQUEST=GetTile&LAYER=reflectivity&TILEMATRIX=5&TILEROW=1&TILECOL=1&TILEMATRIXSET=WorldCRS84Quad", "TileMatrixSet"),
        ("/wmts?REQUEST=GetTile&LAYER=reflectivity&TILEMATRIX=5&TILEROW=1&TILECOL=1&FORMAT=image/jpeg", "FORMAT"),
        ("/wmts/1.0.0/reflectivity/fancy/latest/GoogleMapsCompatible/5/1/1.png", "STYLE"),
        ("/wmts/1.0.0/reflectivity/default/latest/GoogleMapsCompatible/5/99/1.png", "does not exist"),
    ],
)
def test_wmts_errors_are_json_400(server: LiveServer, url: str, needle: str) -> None:
    response = httpx.get(server.url + url)
    assert response.status_code == 400 and needle in response.json()["error"]


def test_kvp_capabilities_equal_restful(server: LiveServer) -> None:
    restful = httpx.get(f"{server.url}/wmts/1.0.0/WMTSCapabilities.xml")
    kvp = httpx.get(f"{server.url}/wmts", params={"service": "WMTS", "request": "GetCapabilities"})
    assert restful.status_code == kvp.status_code == 200 and restful.content == kvp.content
    assert restful.headers["content-type"].startswith("application/xml")


PROXIED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "wx.example.org", "X-Forwarded-Prefix": "/radar"}


def test_proxy_headers_shape_every_absolute_url(server: LiveServer) -> None:
    base = "https://wx.example.org/radar/"
    tilejson = httpx.get(f"{server.url}/tiles/reflectivity/tilejson.json", headers=PROXIED).json()
    assert tilejson["tiles"][0].startswith(base + "tiles/reflectivity/")
    layer = httpx.get(f"{server.url}/api/layers/reflectivity", headers=PROXIED).json()
    assert layer["tiles"].startswith(base) and layer["legend"].startswith(base)
    capabilities = httpx.get(f"{server.url}/wmts/1.0.0/WMTSCapabilities.xml", headers=PROXIED).text
    assert "http://127.0.0.1" not in capabilities and f'template="{base}wmts/1.0.0/reflectivity/default/{{Time}}' in capabilities
    openapi = httpx.get(f"{server.url}/openapi.json", headers=PROXIED).json()
    assert openapi["servers"] == [{"url": "https://wx.example.org/radar"}]
    # Traefik strips the prefix; requests still route.
    assert httpx.get(f"{server.url}/api/layers", headers=PROXIED).status_code == 200


def test_untrusted_proxy_headers_are_ignored(store_url: str) -> None:
    with LiveServer(Settings(store=store_url, forwarded_allow_ips="10.0.0.0/8")) as live:
        layer = httpx.get(f"{live.url}/api/layers/reflectivity", headers=PROXIED).json()
        assert layer["tiles"].startswith(f"{live.url}/tiles/")


def test_root_path_behind_a_prefix(store_url: str) -> None:
    # `wxtiles serve --root-path /wx` behind a proxy that strips /wx before forwarding.
    with LiveServer(Settings(store=store_url), root_path="/wx") as live:
        layer = httpx.get(f"{live.url}/api/layers/reflectivity").json()
        assert layer["tiles"].startswith(f"{live.url}/wx/tiles/reflectivity/")
        tile = layer["tiles"].format(time="latest", z=TILE.z, x=TILE.x, y=TILE.y)
        assert httpx.get(tile.replace("/wx/", "/", 1)).status_code == 200


def test_cors_allows_configured_origins(store_url: str) -> None:
    with LiveServer(Settings(store=store_url, cors_origins="https://maps.example.org")) as live:
        allowed = httpx.get(f"{live.url}/api/layers", headers={"Origin": "https://maps.example.org"})
        other = httpx.get(f"{live.url}/api/layers", headers={"Origin": "https://evil.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://maps.example.org"
        assert "access-control-allow-origin" not in other.headers
        preflight = httpx.options(f"{live.url}/tiles/reflectivity/latest/1/0/0.png", headers={"Origin": "https://maps.example.org", "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 200
