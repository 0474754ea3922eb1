from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.pipeline import ingest_file
from tests.conftest import T0, minutes, radar_file
from tileserver.core.layers import LAYERS
from tileserver.store import Catalog, CatalogError, Frame, Retention, Store, catalog_key, frame_key
from tileserver.store.catalog import CATALOG_FORMAT
from tileserver.store.store import ORPHAN_GRACE_S

RADAR = LAYERS["reflectivity"]
TEMPERATURE = LAYERS["temperature-2m"]


def test_frame_keys_name_time_run_and_content() -> None:
    assert frame_key(RADAR, T0, None, "ab" * 32) == "reflectivity/2026/11/27/20261127T210000Z-abababababab.tif"
    run = T0 - timedelta(hours=3)
    assert frame_key(TEMPERATURE, T0, run, "cd" * 32) == "temperature-2m/runs/20261127T180000Z/20261127T210000Z-cdcdcdcdcdcd.tif"
    with pytest.raises(ValueError, match="run time"):
        frame_key(TEMPERATURE, T0, None, "cd" * 32)


def test_publish_writes_file_then_catalog(store: Store, tmp_path: Path) -> None:
    result = ingest_file(store, radar_file(tmp_path, T0), RADAR)
    assert result.status == "published"
    doc = json.loads(store.storage.read_bytes(catalog_key("reflectivity")))
    assert doc["format"] == CATALOG_FORMAT
    assert [f["time"] for f in doc["frames"]] == ["2026-11-27T21:00:00Z"]
    assert doc["frames"][0]["key"] == result.frame.key
    with rasterio.open(store.storage.gdal_path(result.frame.key)) as cog:
        assert cog.crs.to_epsg() == 3857
        assert cog.block_shapes[0] == (512, 512)
        assert cog.overviews(1), "COG must carry internal overviews"
        assert cog.dtypes[0] == "uint8"
    # Nothing left behind in the temp folder.
    assert list(store.storage.list(".tmp/")) == []


def test_same_frame_twice_is_unchanged_and_a_different_one_is_refused(store: Store, tmp_path: Path) -> None:
    first = ingest_file(store, radar_file(tmp_path, T0), RADAR)
    again = ingest_file(store, radar_file(tmp_path, T0), RADAR)
    assert again.status == "unchanged" and again.frame.key == first.frame.key
    other = tmp_path / "other"
    other.mkdir()
    from ingest.errors import IngestError

    with pytest.raises(IngestError, match="immutable"):
        ingest_file(store, radar_file(other, T0, shift_cols=40), RADAR)
    catalog = store.load_catalog("reflectivity")
    assert [f.key for f in catalog.frames] == [first.frame.key]
    assert store.storage.exists(first.frame.key)


def test_catalog_sorted_and_resolve(store: Store, tmp_path: Path) -> None:
    for step in (10, 0, 5):
        ingest_file(store, radar_file(tmp_path, T0 + minutes(step), shift_cols=step), RADAR)
    catalog = store.load_catalog("reflectivity")
    assert [f.time for f in catalog.frames] == [T0, T0 + minutes(5), T0 + minutes(10)]
    assert catalog.resolve("latest").time == T0 + minutes(10)
    assert catalog.resolve(T0 + minutes(5)).time == T0 + minutes(5)
    assert catalog.resolve(T0 + minutes(3)) is None  # between frames: no frame


def test_forecast_resolve_prefers_newest_run(tmp_path: Path) -> None:
    from tileserver.store import Frame

    def frame(valid_h: int, run_h: int) -> Frame:
        run = T0 + timedelta(hours=run_h)
        return Frame("temperature-2m", T0 + timedelta(hours=valid_h), run, f"k{valid_h}-{run_h}", "d", (0, 0, 1, 1), 5, 1, "s", T0)

    catalog = Catalog("temperature-2m", (frame(1, 0), frame(2, 0), frame(2, 1), frame(3, 1)))
    assert catalog.resolve(T0 + timedelta(hours=2)).run == T0 + timedelta(hours=1)
    assert catalog.resolve(T0 + timedelta(hours=2), run=T0).run == T0
    assert catalog.resolve(T0 + timedelta(hours=1), run=T0 + timedelta(hours=1)) is None
    assert [f.time.hour for f in catalog.visible_frames()] == [22, 23, 0]
    # latest: newest run, valid time nearest to now.
    assert catalog.resolve("latest", now=T0 + timedelta(hours=3, minutes=10)).key == "k3-1"
    assert catalog.resolve("latest", now=T0).key == "k2-1"


def _resolve_by_scan(frames: list[Frame], time: object, run: object, now: datetime) -> Frame | None:
    """The definition of resolve, as a scan; the catalog answers from an index."""
    candidates = [f for f in frames if run is None or f.run == run]
    if not candidates:
        return None
    if time == "latest":
        if candidates[0].run is None:
            return candidates[-1]
        in_run = [f for f in candidates if f.run == max(f.run for f in candidates)]
        return min(in_run, key=lambda f: (abs(f.time - now), f.time))
    matching = [f for f in candidates if f.time == time]
    return max(matching, key=lambda f: f.run or f.time) if matching else None


@settings(max_examples=200, deadline=None)
@given(
    forecast=st.booleans(),
    cells=st.sets(st.tuples(st.integers(0, 5), st.integers(0, 3)), max_size=24),
    query=st.one_of(st.just("latest"), st.integers(0, 9)),
    run=st.one_of(st.none(), st.integers(0, 4)),
    now_h=st.integers(-2, 16),
)
def test_resolve_agrees_with_a_scan(forecast: bool, cells: set[tuple[int, int]], query: object, run: int | None, now_h: int) -> None:
    def hours(h: int) -> datetime:
        return T0 + timedelta(hours=h)

    if forecast:
        frames = [Frame("temperature-2m", hours(v + r), hours(r), f"k{v}-{r}", "d", (0, 0, 1, 1), 5, 1, "s", T0) for v, r in cells]
    else:
        frames = [Frame("reflectivity", hours(v), None, f"k{v}", "d", (0, 0, 1, 1), 5, 1, "s", T0) for v in {v for v, _ in cells}]
    frames.sort(key=lambda f: (f.time, f.run or f.time))
    catalog = Catalog(frames[0].layer if frames else "reflectivity", tuple(frames))
    time = query if query == "latest" else hours(query)  # type: ignore[arg-type]
    run_time = None if run is None else hours(run)
    assert catalog.resolve(time, run_time, now=hours(now_h)) == _resolve_by_scan(frames, time, run_time, hours(now_h))


def test_corrupt_catalog_is_an_error_not_empty(store: Store) -> None:
    store.storage.write_bytes(catalog_key("reflectivity"), b"{not json")
    with pytest.raises(CatalogError, match="reflectivity"):
        store.load_catalog("reflectivity")


def test_prune_keeps_window_before_newest_frame(tmp_path: Path) -> None:
    from tileserver.store.storage import open_storage

    store = Store(open_storage(str(tmp_path / "s"), create=True), Retention(observed=timedelta(minutes=12)))
    keys = []
    for step in (0, 5, 10, 15, 20):
        keys.append(ingest_file(store, radar_file(tmp_path, T0 + minutes(step), shift_cols=step), RADAR).frame.key)
    removed = store.prune("reflectivity")
    assert [f.key for f in removed] == keys[:2]
    assert [f.time for f in store.load_catalog("reflectivity").frames] == [T0 + minutes(m) for m in (10, 15, 20)]
    assert not store.storage.exists(keys[0]) and not store.storage.exists(keys[1])
    assert all(store.storage.exists(k) for k in keys[2:])


def test_prune_keeps_newest_runs(tmp_path: Path) -> None:
    from tileserver.store.storage import open_storage
    from tileserver.store import Frame

    store = Store(open_storage(str(tmp_path / "s"), create=True), Retention(keep_runs=2))
    catalog = Catalog("temperature-2m")
    for run_h in (0, 1, 2):
        run = T0 + timedelta(hours=run_h)
        key = frame_key(TEMPERATURE, run, run, f"{run_h:02d}" * 32)
        store.storage.write_bytes(key, b"cog")
        catalog = catalog.with_frame(Frame("temperature-2m", run, run, key, "d", (0, 0, 1, 1), 5, 3, "s", T0))
    store.storage.write_bytes(catalog_key("temperature-2m"), catalog.to_bytes())
    removed = store.prune("temperature-2m")
    assert [f.run for f in removed] == [T0]
    assert store.load_catalog("temperature-2m").runs() == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]


def test_prune_sweeps_old_orphans_only(store: Store, tmp_path: Path) -> None:
    listed = ingest_file(store, radar_file(tmp_path, T0), RADAR).frame.key
    store.storage.write_bytes("reflectivity/2026/11/27/orphan-old.tif", b"x")
    store.storage.write_bytes("reflectivity/2026/11/27/orphan-new.tif", b"x")
    old = store.storage.gdal_path("reflectivity/2026/11/27/orphan-old.tif")
    os.utime(old, (0, os.path.getmtime(old) - ORPHAN_GRACE_S - 5))
    store.prune("reflectivity")
    assert store.storage.exists(listed)
    assert not store.storage.exists("reflectivity/2026/11/27/orphan-old.tif")
    # A young unlisted file may be an ingest between its upload and its catalog write.
    assert store.storage.exists("reflectivity/2026/11/27/orphan-new.tif")


def test_reader_racing_ingest_never_sees_partial_frames(store: Store, tmp_path: Path) -> None:
    files = [radar_file(tmp_path, T0 + minutes(5 * i), shift_cols=3 * i) for i in range(6)]
    problems: list[str] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                catalog = store.load_catalog("reflectivity")
            except CatalogError as exc:  # a torn catalog would show up here
                problems.append(str(exc))
                continue
            for frame in catalog.frames:
                try:
                    with rasterio.open(store.storage.gdal_path(frame.key)) as cog:
                        cog.read(1, out_shape=(64, 64))
                except Exception as exc:  # noqa: BLE001 - any failure is the finding
                    problems.append(f"{frame.key}: {exc}")

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for path in files:
            ingest_file(store, path, RADAR)
    finally:
        done.set()
        thread.join()
    assert problems == []
    assert len(store.load_catalog("reflectivity").frames) == 6


def test_unchanged_local_catalog_is_not_read_again(store: Store) -> None:
    key = "catalog/reflectivity.json"
    store.storage.write_bytes(key, b"{}")
    raw, version = store.storage.read_if_changed(key, None)
    assert raw == b"{}" and store.storage.read_if_changed(key, version) is None
    # Same size, same second: the rename of a fresh file still makes it a new version.
    store.storage.write_bytes(key, b"[]")
    changed = store.storage.read_if_changed(key, version)
    assert changed is not None and changed[0] == b"[]" and changed[1] != version
    assert store.storage.read_if_changed(key, changed[1]) is None
