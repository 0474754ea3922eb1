"""Random URLs against the real app: never a 500, every 4xx is JSON with an "error" string.

Each URL starts valid (a known layer, a stored frame time, a tile over the data,
a colormap name) and then up to two of its parts are replaced by hostile values:
random unicode, digits ``int()`` rejects, huge and negative numbers, NaN/inf,
empty values, times at the ends of the calendar, percent-encoding, repeated and
unknown parameters. Starting valid matters: the parameters are checked in turn,
so a URL that is wrong everywhere only ever reaches the first check.

The ``@example`` lines are URLs that gave a 500 when this file was written.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import mercantile
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st
from starlette.testclient import TestClient

from ingest.pipeline import ingest_file
from tests.conftest import T0, minutes, radar_file, write_latlon_geotiff
from tileserver.http.app import create_app
from tileserver.core.layers import LAYERS
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Store

FUZZ = settings(
    deadline=None,
    database=None,  # the @example lines keep the failures worth keeping
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

RUN = "2026-11-27T20:00:00Z"
TIMES = ["2026-11-27T21:00:00Z", "2026-11-27T21:05:00Z", "2026-11-27T22:00:00+01:00", "latest"]
COLORMAPS = ["nws-reflectivity", "reflectivity-smooth", "viridis", "temperature", "precip-rate", "wind-speed"]
HOSTILE = [
    "", " ", ".", "..", "%", "%2F", "%zz", "/", "\n", "\x00", "-0", "-1", "+1", "0x10", "1e3", "1_0", "00",
    "١", "³", "²", "¹", "Ⅻ", "½", "nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "1e-400",
    "9" * 30, "0" * 5000, "1" * 4301,
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
    "2026-11-27T21:00:00", "2026-11-27T21:00:00.5Z", "2026-02-30T00:00:00Z", "2026-W48-5T21:00:00Z",
    "2026-11-27", "LATEST", "latest ", "reflectivity\n", "../../etc/passwd", "😀", "é", "\u202e", "\ufeff0",
]


class Raw(str):
    """Sent as is, not percent-encoded: broken escapes and overlong UTF-8."""


RAW = [Raw("%FF"), Raw("%zz"), Raw("%C0%80"), Raw("%00"), Raw("%"), Raw("%E2%80%AE"), Raw("%2e%2e")]


def hostile() -> st.SearchStrategy[str]:
    """Anything a client might put in a path segment or a query value."""
    return st.one_of(
        st.sampled_from(HOSTILE),
        st.sampled_from(RAW),
        st.integers(-(2**70), 2**70).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from([*TIMES, *LAYERS, *COLORMAPS]),
        st.text(max_size=12),
        st.text(alphabet=st.characters(categories=["Nd", "No", "Nl"]), max_size=4),
    )


def enc(text: str) -> str:
    return text if isinstance(text, Raw) else quote(text, safe="")


def query(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{enc(k)}={enc(v)}" for k, v in pairs)


@st.composite
def extra_params(draw: st.DrawFn) -> list[tuple[str, str]]:
    """Unknown, empty and repeated parameters on top of the real ones."""
    key = st.one_of(st.sampled_from(["time", "run", "colormap", "lon", "lat", "width", "height", "layer", ""]), st.text(max_size=5))
    return draw(st.lists(st.tuples(key, hostile()), max_size=3))


@st.composite
def tile_urls(draw: st.DrawFn) -> str:
    z = draw(st.integers(0, 22))
    if draw(st.booleans()):  # over the stored frames (the US) or anywhere
        lon, lat = draw(st.floats(-131.0, -59.0)), draw(st.floats(19.0, 56.0))
        tile = mercantile.tile(lon, lat, z)
        x, y = tile.x, tile.y
    else:
        x, y = draw(st.integers(0, 2**z - 1)), draw(st.integers(0, 2**z - 1))
    parts = {
        "layer": draw(st.sampled_from(list(LAYERS))),
        "time": draw(st.sampled_from(TIMES)),
        "z": str(z), "x": str(x), "y": str(y),
        "suffix": draw(st.sampled_from([".png", "@2x.png", ".npy", "@1x.png", "@2x.npy"])),
    }
    params: list[tuple[str, str]] = []
    if draw(st.booleans()):
        params.append(("colormap", draw(st.sampled_from(COLORMAPS))))
    if parts["layer"] == "temperature-2m" and draw(st.booleans()):
        params.append(("run", RUN))
    for name in draw(st.sets(st.sampled_from([*parts, "colormap", "run", "extra"]), max_size=2)):
        if name in parts:
            parts[name] = draw(st.one_of(hostile(), st.sampled_from(["@3x.png", ".jpg", "", ".PNG", ".png.png"])) if name == "suffix" else hostile())
        elif name == "extra":
            params += draw(extra_params())
        else:
            params.append((name, draw(hostile())))
    path = "/tiles/{}/{}/{}/{}/{}".format(*map(enc, (parts["layer"], parts["time"], parts["z"], parts["x"], parts["y"] + parts["suffix"])))
    return f"{path}?{query(params)}" if params else path


@st.composite
def layer_urls(draw: st.DrawFn) -> str:
    layer = draw(st.one_of(st.sampled_from(list(LAYERS)), hostile()))
    tail = draw(st.sampled_from(["", "", "/", "/point/", "/points", "/point/x"]))
    path = draw(st.sampled_from(["/api/layers", f"/api/layers/{enc(layer)}{tail}"]))
    params = draw(extra_params())
    return f"{path}?{query(params)}" if params else path


@st.composite
def point_urls(draw: st.DrawFn) -> str:
    parts = {
        "layer": draw(st.sampled_from(["reflectivity", "temperature-2m", "precip-rate"])),
        "lon": repr(draw(st.floats(-180.0, 180.0))),
        "lat": repr(draw(st.floats(-85.0511287798066, 85.0511287798066))),
        "time": draw(st.sampled_from([None, *TIMES])),
        "run": draw(st.sampled_from([None, None, RUN])),
    }
    extra: list[tuple[str, str]] = []
    for name in draw(st.sets(st.sampled_from([*parts, "extra"]), max_size=2)):
        if name == "extra":
            extra = draw(extra_params())
        else:
            parts[name] = draw(st.one_of(st.none(), hostile())) if name != "layer" else draw(hostile())
    params = [(k, v) for k, v in parts.items() if k != "layer" and v is not None]
    return f"/api/layers/{enc(parts['layer'])}/point?{query(params + extra)}"


@st.composite
def colormap_urls(draw: st.DrawFn) -> str:
    name = draw(st.one_of(st.sampled_from(COLORMAPS), hostile()))
    if draw(st.integers(0, 4)) == 0:
        path = draw(st.sampled_from(["/api/colormaps", f"/api/colormaps/{enc(name)}", f"/api/colormaps/{enc(name)}/legend"]))
        return path
    params = [
        ("width", str(draw(st.integers(-5, 2100)))), ("height", str(draw(st.integers(-5, 600)))),
        ("layer", draw(st.sampled_from(list(LAYERS)))),
    ]
    params = draw(st.lists(st.sampled_from(params), unique=True))  # some, in any order
    for key in draw(st.sets(st.sampled_from(["width", "height", "layer"]), max_size=2)):
        params.append((key, draw(hostile())))
    params += draw(extra_params())
    path = f"/api/colormaps/{enc(name)}/legend.png"
    return f"{path}?{query(params)}" if params else path


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("fuzz")
    store = Store(open_storage(str(folder / "store"), create=True))
    files = [radar_file(folder, T0 + minutes(step), shift_cols=step) for step in (0, 5)]
    for path in files:
        ingest_file(store, path, LAYERS["reflectivity"])
    # A forecast frame too, so run= has something to match.
    temperature = write_latlon_geotiff(folder / "t2m.tif", np.linspace(-20, 30, 350 * 700, dtype=np.float32).reshape(350, 700))
    ingest_file(store, temperature, LAYERS["temperature-2m"], time=T0, run=T0 - timedelta(hours=1))
    app = create_app(Settings(store=str(folder / "store"), catalog_ttl_s=0))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def check(client: TestClient, url: str, method: str = "GET") -> None:
    response = client.request(method, url)
    shown = f"{method} {url[:200]}{'...' if len(url) > 200 else ''}"
    assert response.status_code < 500, f"{shown} -> {response.status_code} {response.text[:200]}"
    if 400 <= response.status_code < 500:
        assert response.headers["content-type"] == "application/json", shown
        if method == "GET":
            body = response.json()
            assert isinstance(body, dict) and isinstance(body.get("error"), str), shown


@settings(FUZZ, max_examples=120)
@given(url=tile_urls(), method=st.sampled_from(["GET", "GET", "GET", "HEAD"]))
# Digits that str.isdigit() accepts and int() refuses (params.tile_params).
@example(url="/tiles/reflectivity/latest/%C2%B3/0/0.png", method="GET")
@example(url="/tiles/reflectivity/latest/1/%C2%B9/0.png", method="GET")
# More than 4300 digits: int() refuses them (sys.get_int_max_str_digits).
@example(url="/tiles/reflectivity/latest/" + "0" * 5000 + "/0/0.png", method="GET")
@example(url="/tiles/reflectivity/latest/3/" + "0" * 5000 + "/0.png", method="GET")
# Times whose conversion to UTC leaves datetime's range (timeutil.parse_utc).
@example(url="/tiles/reflectivity/0001-01-01T00%3A00%3A00%2B01%3A00/3/0/0.png", method="GET")
@example(url="/tiles/reflectivity/9999-12-31T23%3A59%3A59-01%3A00/3/0/0.png", method="GET")
@example(url="/tiles/temperature-2m/latest/3/1/3.png?run=0001-01-01T00%3A00%3A00%2B00%3A01", method="GET")
def test_tile_urls(client: TestClient, url: str, method: str) -> None:
    check(client, url, method)


@settings(FUZZ, max_examples=30)
@given(url=layer_urls())
def test_layer_urls(client: TestClient, url: str) -> None:
    check(client, url)


@settings(FUZZ, max_examples=60)
@given(url=point_urls())
@example(url="/api/layers/reflectivity/point?lon=-100&lat=43&time=0001-01-01T00%3A00%2B05%3A00")
@example(url="/api/layers/temperature-2m/point?lon=-100&lat=43&run=9999-12-31T23%3A00%3A00-05%3A00")
def test_point_urls(client: TestClient, url: str) -> None:
    check(client, url)


@settings(FUZZ, max_examples=60)
@given(url=colormap_urls())
@example(url="/api/colormaps/nws-reflectivity/legend.png?width=%C2%B2")
@example(url="/api/colormaps/nws-reflectivity/legend.png?height=" + "1" * 5000)
def test_colormap_urls(client: TestClient, url: str) -> None:
    check(client, url)
