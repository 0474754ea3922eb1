"""Animated loops: frames, sizes, durations, stamps, forecast marks, limits, ETags, caching."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import mercantile
import numpy as np
import pytest
from PIL import Image

from ingest.pipeline import ingest_file
from renderers import loops as drawing
from tileserver.service import loops
from tileserver.service.loops import LoopRequest, loop_params, plan_loop, render_loop
from tests.conftest import T0, minutes
from tests.fixtures.storms import RADAR, ingest_steps, write_step
from tileserver.service.errors import BadRequest, NotFound
from tileserver.service.params import tile_params
from tileserver.service import TileService
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Store

BBOX = "-112,34,-92,46"  # inside the test radar domain (-130..-80, 30..55)
WIDTH = 320
DELAY, HOLD = 200, 800
NOWCAST_MIN = 30  # 6 nowcast frames at the 5-minute cadence
OBSERVED = 3


@pytest.fixture(scope="module")
def loop_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three radar frames 5 minutes apart (so the last has motion and nowcasts), and a fourth to add later."""
    folder = tmp_path_factory.mktemp("loops")
    store = Store(open_storage(str(folder / "store"), create=True))
    ingest_steps(store, folder, range(OBSERVED))
    write_step(folder, OBSERVED)
    return folder


@pytest.fixture(scope="module")
def service(loop_store: Path) -> TileService:
    store = Store(open_storage(str(loop_store / "store")))
    return TileService(store, Settings(store=store.storage.url))


def query(**extra: str) -> dict[str, str]:
    return {"bbox": BBOX, "width": str(WIDTH), "delay": str(DELAY), "hold": str(HOLD), "nowcast": str(NOWCAST_MIN), **extra}


def decode(body: bytes) -> tuple[list[np.ndarray], list[int], Image.Image]:
    """Every frame as RGB, every frame's duration in ms, and the opened image (for its info)."""
    image = Image.open(io.BytesIO(body))
    frames, durations = [], []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        frames.append(np.asarray(image.convert("RGB")))
        durations.append(int(image.info.get("duration", 0)))  # a one-frame "loop" is a still image
    return frames, durations, image


def make(service: TileService, fmt: str, **extra: str) -> tuple[LoopRequest, loops.LoopPlan, bytes]:
    request = loop_params("reflectivity", fmt, query(**extra))
    plan = plan_loop(service, request)
    body, media_type, etag = render_loop(service, request, plan)
    assert media_type == loops.MEDIA_TYPES[fmt] and etag == plan.etag
    return request, plan, body


@pytest.mark.parametrize("fmt", ["webp", "gif", "png"])
def test_loop_decodes_with_frames_size_and_durations(service: TileService, fmt: str) -> None:
    request, plan, body = make(service, fmt)
    frames, durations, image = decode(body)
    nowcast_frames = NOWCAST_MIN // RADAR.cadence_minutes
    assert len(frames) == OBSERVED + nowcast_frames == len(plan.frames)
    assert image.format == {"webp": "WEBP", "gif": "GIF", "png": "PNG"}[fmt]
    # Height from the bbox's aspect in Web Mercator.
    x0, y0 = mercantile.xy(-112, 34)
    x1, y1 = mercantile.xy(-92, 46)
    height = round(WIDTH * (y1 - y0) / (x1 - x0))
    assert request.height == height
    assert all(frame.shape == (height, WIDTH, 3) for frame in frames)
    # delay per frame; the hold on the last observed frame.
    expected = [DELAY] * len(frames)
    expected[OBSERVED - 1] += HOLD
    assert durations == expected
    assert image.info.get("loop") == 0  # forever
    times = [f["time"] for f in loops.loop_summary(plan)]
    assert times[0] == "2026-11-27T21:00:00Z" and times[OBSERVED - 1] == "2026-11-27T21:10:00Z"
    assert times[OBSERVED:] == [f"2026-11-27T21:{m}:00Z" for m in (15, 20, 25, 30, 35, 40)]
    assert plan.headers["X-Nowcast-From"] == "2026-11-27T21:10:00Z"
    assert plan.headers["X-Frame-Time"] == "2026-11-27T21:10:00Z"
    assert plan.headers["X-Loop-Frames"] == str(len(frames))


def test_each_frame_is_stamped_with_its_time(service: TileService) -> None:
    _, plan, body = make(service, "webp")
    frames, _, _ = decode(body)
    left, top, right, bottom = drawing.stamp_box(WIDTH, plan.frames[0])
    stamps = [frame[top:bottom, left:right].astype(int) for frame in frames[:OBSERVED]]
    for a, b in zip(stamps, stamps[1:]):
        assert (np.abs(a - b).sum(axis=2) > 60).sum() > 10  # different digits
    # The text is there: bright pixels in the box, none of them the background.
    assert (stamps[0].min(axis=2) > 200).sum() > 20
    assert [f.label for f in plan.frames[:OBSERVED]] == ["2026-11-27 21:00Z", "2026-11-27 21:05Z", "2026-11-27 21:10Z"]
    assert plan.frames[OBSERVED].forecast == "Forecast +5 min"
    assert plan.frames[-1].forecast == "Forecast +30 min"


@pytest.mark.parametrize("fmt", ["png", "gif", "webp"])
def test_forecast_frames_are_marked(service: TileService, fmt: str) -> None:
    request, plan, body = make(service, fmt)
    frames, _, _ = decode(body)
    border = np.array(drawing.FORECAST_BORDER)
    for index, frame in enumerate(frames):
        edge = frame[request.height // 2, : drawing.FORECAST_BORDER_PX]  # the left edge, mid-height
        if index < OBSERVED:
            assert plan.frames[index].forecast is None
            assert not (edge == border).all(axis=1).any()
        else:
            assert plan.frames[index].forecast
            assert (edge == border).all()  # lossless everywhere: the exact marker colour
    # The stamp box itself is amber on forecast frames, dark on observed ones.
    left, top, right, bottom = drawing.stamp_box(WIDTH, plan.frames[-1])
    corner = (bottom - 2, drawing.FORECAST_BORDER_PX + 1)  # inside the box, below the text, off the border
    observed, forecast = frames[0][corner].astype(int), frames[-1][corner].astype(int)
    assert forecast[0] > forecast[1] > forecast[2] and forecast[0] - forecast[2] > 80
    assert observed.max() < 60


def test_frames_are_the_service_tiles(service: TileService) -> None:
    """A loop over exactly one tile is that tile's colours over the background, pixel for pixel."""
    tile = mercantile.tile(-100.0, 42.0, 5)
    west, south, east, north = mercantile.bounds(tile)
    request = loop_params("reflectivity", "png", {"bbox": f"{west},{south},{east},{north}", "width": "256", "nowcast": "5"})
    assert (request.width, request.height) == (256, 256)
    plan = plan_loop(service, request)
    assert plan.zoom == 5
    frames, _, _ = decode(render_loop(service, request, plan)[0])
    for index, time in ((0, "2026-11-27T21:00:00Z"), (OBSERVED, "2026-11-27T21:15:00Z")):
        tile_request = tile_params("reflectivity", time, "5", str(tile.x), f"{tile.y}.png", {})
        target, etag, cc = service.tiles.prepare_tile(tile_request)
        colours = Image.open(io.BytesIO(service.tiles.render_tile(tile_request, target, etag))).convert("RGBA")
        expected = Image.new("RGBA", (256, 256), drawing.BACKGROUND + (255,))
        expected.alpha_composite(colours)
        expected_rgb = np.asarray(expected.convert("RGB"))
        # Away from the stamp box, the timeline and the forecast border.
        box_bottom = drawing.stamp_box(256, plan.frames[index])[3]
        inner = (slice(box_bottom, 256 - drawing.TIMELINE_PX), slice(drawing.FORECAST_BORDER_PX, 256 - drawing.FORECAST_BORDER_PX))
        assert (expected_rgb[inner] != drawing.BACKGROUND).any(axis=2).sum() > 500  # there is rain to compare
        np.testing.assert_array_equal(frames[index][inner], expected_rgb[inner])


def meridian_column(lon: float) -> int:
    x0, _ = mercantile.xy(-112, 34)
    x1, _ = mercantile.xy(-92, 46)
    return round((mercantile.xy(lon, 0)[0] - x0) / (x1 - x0) * WIDTH)


def test_outlines_without_the_outline_file_draw_a_graticule(service: TileService, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(loops, "OUTLINES_PATH", tmp_path / "missing.json")
    _, plain_plan, plain = make(service, "png", nowcast="0", frames="1")
    _, lined_plan, lined = make(service, "png", nowcast="0", frames="1", outlines="1")
    assert plain_plan.etag != lined_plan.etag
    a, b = decode(plain)[0][0].astype(int), decode(lined)[0][0].astype(int)
    changed = np.abs(a - b).sum(axis=2) > 0
    column = meridian_column(-100)  # the 100°W meridian (5° steps over 20°)
    assert changed[:, column].mean() > 0.8
    assert changed[:, column + 7].mean() < 0.2


def test_outlines_draw_the_outline_file(service: TileService, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "outlines.json"
    # One coastline along 37.5°N from 110°W to 95°W, delta-encoded at 0.01 degree.
    path.write_text('{"format": "wxtiles-outlines/1", "scale": 100, "layers": {"coastline": [[-11000, 3750, 1500, 0]]}}')
    monkeypatch.setattr(loops, "OUTLINES_PATH", path)
    request, plan, body = make(service, "png", nowcast="0", frames="1", outlines="1")
    frame = decode(body)[0][0]
    x0, y0 = mercantile.xy(-112, 34)
    x1, y1 = mercantile.xy(-92, 46)
    row = round((y1 - mercantile.xy(0, 37.5)[1]) / (y1 - y0) * request.height)
    colour = np.array(drawing.OUTLINE_STYLE["coastline"][:3])
    on_line = (np.abs(frame[row - 1 : row + 2].astype(int) - colour).sum(axis=2) == 0).any(axis=0)
    inside = slice(meridian_column(-109) , meridian_column(-96))
    outside = slice(meridian_column(-94), WIDTH - 10)
    assert on_line[inside].mean() > 0.95 and not on_line[outside].any()
    # The outline file is part of the ETag; an unusable one falls back to the graticule.
    path.write_text('{"format": "something-else"}')
    assert plan_loop(service, request).etag != plan.etag
    assert drawing.load_outlines(loops.OUTLINES_PATH) is None


def test_fewer_frames_and_an_older_end_time(service: TileService) -> None:
    request = loop_params("reflectivity", "gif", query(frames="2"))
    plan = plan_loop(service, request)
    assert len(plan.frames) == 2 + NOWCAST_MIN // 5
    older = plan_loop(service, loop_params("reflectivity", "gif", query(time="2026-11-27T21:05:00Z")))
    # Nowcasts follow only the latest observation; a loop ending earlier has none.
    assert [f["time"] for f in loops.loop_summary(older)] == ["2026-11-27T21:00:00Z", "2026-11-27T21:05:00Z"]
    assert older.durations == (DELAY, DELAY + HOLD)
    assert older.cache_control == f"public, max-age={loops.PINNED_MAX_AGE_S}"
    assert "X-Nowcast-From" not in older.headers
    assert plan.cache_control == "public, max-age=60"
    with pytest.raises(NotFound, match="no frame at 2026-11-27T21:02:00Z"):
        plan_loop(service, loop_params("reflectivity", "gif", query(time="2026-11-27T21:02:00Z")))
    with pytest.raises(BadRequest, match="unknown colormap"):
        plan_loop(service, loop_params("reflectivity", "gif", query(colormap="no-such-map")))
    with pytest.raises(BadRequest, match="mm/h"):
        plan_loop(service, loop_params("reflectivity", "gif", query(colormap="precip-rate")))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bbox": None}, "bbox is required"),
        ({"bbox": "-100,30,-90"}, "four numbers"),
        ({"bbox": "-100,30,-90,nan"}, "finite"),
        ({"bbox": "170,30,-170,40"}, "antimeridian"),
        ({"bbox": "-100,30,-100,40"}, "empty"),
        ({"bbox": "-100,-89,-90,40"}, "out of range -85.0511..85.0511"),
        ({"bbox": "-190,30,-90,40"}, "out of range -180..180"),
        ({"width": "5000"}, "width must be a whole number from 64 to 1600"),
        ({"width": "-5"}, "from 64 to 1600"),
        ({"bbox": "-100,30,-99,50", "width": "800"}, "limit is 1600 px"),
        ({"bbox": "-120,40,-80,40.1", "width": "400"}, "the minimum is 64 px"),
        ({"frames": "49"}, "frames must be a whole number from 1 to 48"),
        ({"frames": "0"}, "from 1 to 48"),
        ({"delay": "5"}, "delay must be a whole number from 20 to 2000"),
        ({"hold": "99999"}, "hold must be a whole number from 0 to 10000"),
        ({"nowcast": "500"}, "nowcast must be a whole number from 0 to 120"),
        ({"outlines": "yes"}, "outlines must be 0 or 1"),
        ({"time": "yesterday"}, "time:"),
        ({"bbox": "-120,25,-70,50", "width": "1600", "frames": "48"}, "the limit is 40 megapixels"),
    ],
)
def test_bad_parameters_are_400_with_the_limit(change: dict[str, str | None], message: str) -> None:
    q = query(**{k: v for k, v in change.items() if v is not None})
    for key, value in change.items():
        if value is None:
            del q[key]
    with pytest.raises(BadRequest) as raised:
        loop_params("reflectivity", "webp", q)
    assert raised.value.status == 400
    assert message in raised.value.message


def test_bad_format_layer_and_nowcast_on_a_model_layer() -> None:
    with pytest.raises(BadRequest, match=r"\.webp, \.gif or \.png"):
        loop_params("reflectivity", "jpg", query())
    with pytest.raises(NotFound):
        loop_params("no-such-layer", "webp", query())
    with pytest.raises(BadRequest, match="no nowcast frames"):
        loop_params("temperature-2m", "webp", {"bbox": BBOX, "nowcast": "30"})
    assert loop_params("temperature-2m", "webp", {"bbox": BBOX}).nowcast_min == 0
    # The server's horizon bounds nowcast; the default is an hour or the horizon.
    assert loop_params("reflectivity", "webp", {"bbox": BBOX}, horizon_min=30).nowcast_min == 30
    with pytest.raises(BadRequest, match="from 0 to 30"):
        loop_params("reflectivity", "webp", {"bbox": BBOX, "nowcast": "60"}, horizon_min=30)
    defaults = loop_params("reflectivity", "webp", {"bbox": BBOX})
    assert (defaults.width, defaults.frames, defaults.nowcast_min, defaults.delay_ms, defaults.hold_ms) == (800, 12, 60, 250, 1000)


def test_cached_by_etag_and_a_new_frame_changes_it(loop_store: Path, tmp_path: Path) -> None:
    shutil.copytree(loop_store / "store", tmp_path / "store")
    store = Store(open_storage(str(tmp_path / "store")))
    service = TileService(store, Settings(store=store.storage.url, catalog_ttl_s=0.0))
    request = loop_params("reflectivity", "webp", query())
    first = plan_loop(service, request)
    body, _, etag = render_loop(service, request, first)
    assert etag in service.tiles.cache
    # Same frames, same ETag: in this service (a cache hit, the very same bytes) and in another replica.
    tile_hits = service.metrics.tile_cache.labels("hit")._value.get()
    assert render_loop(service, request)[0] is body
    assert service.metrics.tile_cache.labels("hit")._value.get() == tile_hits  # a loop is not a tile
    other = TileService(store, Settings(store=store.storage.url))
    assert plan_loop(other, request).etag == etag
    # Parameters that change the picture change the ETag.
    assert plan_loop(service, loop_params("reflectivity", "webp", query(delay="300"))).etag != etag
    assert plan_loop(service, loop_params("reflectivity", "gif", query())).etag != etag

    ingest_file(store, loop_store / f"radar-{OBSERVED:02d}.tif", RADAR, time=T0 + minutes(5 * OBSERVED))
    second = plan_loop(service, request)
    assert second.etag != etag
    assert second.headers["X-Frame-Time"] == "2026-11-27T21:15:00Z"
    assert second.headers["X-Nowcast-From"] == "2026-11-27T21:15:00Z"
    assert len(second.frames) == OBSERVED + 1 + NOWCAST_MIN // 5
    new_body, _, new_etag = render_loop(service, request, second)
    assert new_etag == second.etag and new_body != body
    frames, durations, _ = decode(new_body)
    assert len(frames) == len(second.frames)
    assert durations[OBSERVED] == DELAY + HOLD  # the hold moved to the new latest observation


def test_model_layer_loops_over_valid_times_all_marked_forecast(tmp_path: Path) -> None:
    from tests.conftest import write_latlon_geotiff
    from tileserver.core.layers import LAYERS

    store = Store(open_storage(str(tmp_path / "store"), create=True))
    rows, cols = np.mgrid[0:120, 0:200]
    for hour in (1, 2, 3):
        values = (-10 + cols * 0.2 + rows * 0.1 + hour * 3).astype(np.float32)  # a smooth gradient: >256 colours
        path = write_latlon_geotiff(tmp_path / f"t{hour}.tif", values, -120.0, 50.0, 0.2)
        ingest_file(store, path, LAYERS["temperature-2m"], time=T0 + minutes(60 * hour), run=T0)
    service = TileService(store, Settings(store=store.storage.url))
    request = loop_params("temperature-2m", "gif", {"bbox": "-115,30,-90,45", "width": "200", "frames": "2"})
    plan = plan_loop(service, request)
    assert [f.label for f in plan.frames] == ["2026-11-27 23:00Z", "2026-11-28 00:00Z"]
    assert [f.forecast for f in plan.frames] == ["Forecast +2 h (run 27 21Z)", "Forecast +3 h (run 27 21Z)"]
    assert plan.durations == (250, 1250)  # the hold on the last frame
    assert plan.cache_control == "public, max-age=60"  # a newer run can take these valid times over
    frames, durations, _ = decode(render_loop(service, request, plan)[0])
    assert len(frames) == 2 and durations == [250, 1250]
    assert frames[0].shape == (request.height, 200, 3)
    # Quantised to 256 colours, the border keeps its colour closely.
    edge = frames[0][request.height // 2, 0].astype(int)
    assert np.abs(edge - np.array(drawing.FORECAST_BORDER)).max() <= 12


def test_loop_route_over_http(tmp_path, live_server_for) -> None:  # noqa: ANN001
    import httpx
    from PIL import Image

    from ingest.pipeline import ingest_file as ingest
    from tests.conftest import T0 as START, minutes as mins
    from tests.fixtures.storms import RADAR as LAYER, write_step as step_file
    from tileserver.store.storage import open_storage as storage_at
    from tileserver.store import Store as StoreAt

    store = StoreAt(storage_at(str(tmp_path / "store"), create=True))
    for step in range(3):
        ingest(store, step_file(tmp_path, step), LAYER, time=START + mins(5 * step))
    server = live_server_for(store.storage.url)
    url = f"{server.url}/loops/reflectivity.gif"
    response = httpx.get(url, params={"bbox": "-110,35,-90,47", "width": 400, "frames": 3, "nowcast": 30}, timeout=60)
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    image = Image.open(__import__("io").BytesIO(response.content))
    assert image.n_frames == 3 + 6 and image.size[0] == 400
    again = httpx.get(url, params={"bbox": "-110,35,-90,47", "width": 400, "frames": 3, "nowcast": 30}, headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    too_big = httpx.get(url, params={"bbox": "-110,35,-90,47", "width": 1600, "frames": 48, "nowcast": 120})
    assert too_big.status_code == 400 and "megapixels" in too_big.json()["error"]


@pytest.mark.parametrize("fmt", ["webp", "gif", "png"])
def test_frames_are_encoded_as_they_are_drawn(fmt: str) -> None:
    """No encoder holds the RGB frames: WebP takes each as it comes, GIF and APNG keep
    a byte a pixel (palette indices) and let the RGB frame go. Colours stay exact."""
    import gc
    import weakref

    count, size = 12, (96, 64)
    colours = [(38, 40, 44), (0, 200, 0), (255, 255, 0), (200, 0, 0)]
    alive: list[weakref.ref[Image.Image]] = []
    most_alive = 0

    def draw(index: int) -> Image.Image:
        nonlocal most_alive
        gc.collect()
        most_alive = max(most_alive, sum(ref() is not None for ref in alive))
        image = Image.new("RGB", size, colours[0])
        image.paste(colours[1 + index % 3], (index * 8, 0, index * 8 + 8, size[1]))
        alive.append(weakref.ref(image))
        return image

    body = drawing.encode_loop((draw(index) for index in range(count)), [100] * count, fmt)
    decoded, durations, _ = decode(body)
    assert len(decoded) == count and durations == [100] * count
    for index, frame in enumerate(decoded):
        assert tuple(frame[0, index * 8 + 2]) == colours[1 + index % 3] and tuple(frame[0, -1 if index < 11 else 0]) == colours[0]
    # While a frame is drawn, one other may still be held: WebP's first (for the
    # writer's seek back to it), or the frame GIF and APNG have just indexed.
    assert most_alive <= 1, most_alive


def test_colours_beyond_one_palette_stay_exact_where_they_can() -> None:
    """More than 256 colours over the loop: each frame keeps its own exact palette (GIF),
    or APNG keeps the RGB frames."""
    frames = []
    for index in range(2):
        array = np.zeros((16, 16, 3), np.uint8)
        array[..., 0] = np.arange(256, dtype=np.uint8).reshape(16, 16)
        array[..., 1] = index * 100
        frames.append(Image.fromarray(array, "RGB"))
    for fmt in ("gif", "png"):
        decoded, _, _ = decode(drawing.encode_loop(iter(frames), [100, 100], fmt))
        for frame, original in zip(decoded, frames):
            assert np.array_equal(frame, np.asarray(original)), fmt
