"""Live verification at ingest: known motion scores near 1, unrelated frames near 0,
nothing is scored before there is something to score, and the record keeps every update."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from ingest.pipeline import ingest_file
from ingest.verify import MAX_CELLS, Grid, extrapolate, verify_observation
from renderers.nowcast.advection import MotionField
from tests.conftest import T0, minutes, write_latlon_geotiff
from tests.fixtures.storms import RES, SHAPE, ingest_steps, write_step
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Retention, Store
from tileserver.core.verification import Case, Record, summary

RADAR = LAYERS["reflectivity"]


def csi(store: Store, lead: int) -> list[float | None]:
    doc = summary(RADAR, store.load_verification(RADAR.id), store.retention.verification)
    row = next(item for item in doc["leads"] if item["lead_minutes"] == lead)
    return [t["csi"] for t in row["thresholds"]]


def cases(store: Store) -> list[tuple[int, int]]:
    """(minutes after T0 of the observation, lead) of every stored case."""
    record = store.load_verification(RADAR.id)
    return [] if record is None else [(int((c.valid - T0) / minutes(1)), c.lead_minutes) for c in record.cases]


def unrelated_field(step: int) -> np.ndarray:
    """Storms placed afresh every frame: no motion links one frame to the next."""
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    rng = np.random.default_rng(1000 + step)
    values = np.full(SHAPE, -99.0, np.float32)
    for _ in range(40):
        cy, cx = rng.uniform(40, 460), rng.uniform(40, 960)
        blob = rng.uniform(30, 60) * np.exp(-(((rows - cy) / rng.uniform(6, 18)) ** 2 + ((cols - cx) / rng.uniform(8, 24)) ** 2))
        values = np.where(blob > 10, np.maximum(values, blob), values)
    return values


@pytest.fixture(scope="module")
def moving(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Storms translating at a known uniform speed, ingested as they would arrive, every 5 minutes."""
    folder = tmp_path_factory.mktemp("moving")
    store = Store(open_storage(str(folder / "store"), create=True))
    return ingest_steps(store, folder, range(6))


def test_known_uniform_motion_scores_near_one_at_short_leads(moving: Store) -> None:
    assert all(score is not None and score > 0.85 for score in csi(moving, 5)), csi(moving, 5)
    assert all(score is not None and score > 0.8 for score in csi(moving, 15)), csi(moving, 15)
    record = moving.load_verification(RADAR.id)
    assert record is not None and record.thresholds == (20.0, 30.0, 40.0)
    # The grid is coarse: a few hundred thousand cells at most.
    for case in record.cases:
        assert all(sum(row) <= MAX_CELLS for row in case.counts)


def test_each_observation_scores_the_nowcasts_valid_at_its_time_once(moving: Store, tmp_path: Path) -> None:
    # The first frame has no motion; nowcasts start from the second.
    expected = sorted((5 * obs, 5 * (obs - base)) for obs in range(2, 6) for base in range(1, obs))
    assert sorted(cases(moving)) == expected
    # Ingesting an observation again, or scoring it again, counts nothing twice.
    before = moving.load_verification(RADAR.id)
    ingest_file(moving, write_step(tmp_path, 5), RADAR, time=T0 + minutes(25))
    verify_observation(moving, RADAR, moving.load_catalog(RADAR.id).frames[-1])
    assert moving.load_verification(RADAR.id).cases == before.cases  # type: ignore[union-attr]


def test_nothing_is_scored_before_there_is_anything_to_score(tmp_path: Path) -> None:
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    assert store.load_verification(RADAR.id) is None
    ingest_file(store, write_step(tmp_path, 0), RADAR, time=T0)
    ingest_file(store, write_step(tmp_path, 1), RADAR, time=T0 + minutes(5))
    # Two frames: the first has no motion field, so no nowcast was ever made from it.
    assert store.load_verification(RADAR.id) is None
    doc = summary(RADAR, None, store.retention.verification)
    assert doc["cases"] == 0 and "No nowcast has been verified yet" in doc["message"]
    assert all(lead["cases"] == 0 and all(t["csi"] is None for t in lead["thresholds"]) for lead in doc["leads"])
    # A frame 7 minutes on verifies nothing either: no nowcast was valid then.
    ingest_file(store, write_step(tmp_path, 2), RADAR, time=T0 + minutes(12))
    assert store.load_verification(RADAR.id) is None
    ingest_file(store, write_step(tmp_path, 3), RADAR, time=T0 + minutes(17))
    # Now the frame at 12 min verifies its +5; 17 - 5 = 12 minutes is no nowcast step of a 5-minute layer.
    assert cases(store) == [(17, 5)]


def test_unrelated_frames_score_near_zero(tmp_path: Path) -> None:
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    for step in range(5):
        path = write_latlon_geotiff(tmp_path / f"unrelated-{step}.tif", unrelated_field(step), -130.0, 55.0, RES)
        ingest_file(store, path, RADAR, time=T0 + minutes(5 * step))
    for lead in (5, 10):
        assert all(score is not None and score < 0.15 for score in csi(store, lead)), csi(store, lead)


def test_extrapolate_moves_a_grid_with_uniform_motion_and_leaves_inflow_without_coverage() -> None:
    pixel = 1000.0
    base = np.full((41, 62), 0.0, dtype=np.float32)  # not a whole number of knots
    base[10:20, 5:15] = 35.0
    # 2 cells eastward and 1 southward per 10 minutes, for 30 minutes.
    u = np.full((5, 7), 2 * pixel / 600, dtype=np.float32)
    v = np.full((5, 7), -1 * pixel / 600, dtype=np.float32)
    field = MotionField(u, v, Affine(10 * pixel, 0, 0.0, 0, -10 * pixel, 41 * pixel))
    moved = extrapolate(base, field, Grid(0.0, 41 * pixel, pixel, 62, 41), 1800.0)
    expected = np.full_like(base, 0.0)
    expected[13:23, 11:21] = 35.0
    expected[:, :6] = np.nan  # departures west of the grid: nothing known there
    expected[:3, :] = np.nan
    np.testing.assert_array_equal(moved, expected)


def test_extrapolate_interpolates_as_the_tiles_do() -> None:
    """Half a cell eastward: cells take the mean of two neighbours, except next to no coverage or no echo."""
    pixel = 1000.0
    base = np.tile(np.arange(20, dtype=np.float32), (12, 1))  # a ramp: 0, 1, 2, ... eastward
    base[5, 8] = np.nan  # no coverage
    base[7, 12] = -np.inf  # no echo
    u = np.full((3, 4), 0.5 * pixel / 600, dtype=np.float32)  # half a cell per 10 minutes
    field = MotionField(u, np.zeros_like(u), Affine(10 * pixel, 0, 0.0, 0, -10 * pixel, 12 * pixel))
    grid = Grid(0.0, 12 * pixel, pixel, 20, 12)
    blended = extrapolate(base, field, grid, 600.0)
    # Away from the special cells: halfway between a cell and its western neighbour.
    np.testing.assert_allclose(blended[2, 1:], np.arange(19, dtype=np.float32) + 0.5, atol=1e-3)
    assert np.isfinite(blended[2, 1:]).all()
    # Next to no coverage or no echo there is no blend: the value of the cell the point
    # falls in (a tie goes to the next cell), as in the tiles.
    assert np.isnan(blended[5, 8]) and blended[5, 9] == 9.0
    assert blended[7, 12] == -np.inf and blended[7, 13] == 13.0


def test_layers_without_nowcasts_are_not_verified(store: Store) -> None:
    frame = type("F", (), {"run": None})()
    assert verify_observation(store, LAYERS["temperature-2m"], frame) == []  # type: ignore[arg-type]


def _case(valid_min: int, lead: int) -> Case:
    return Case(T0 + minutes(valid_min), T0 + minutes(valid_min - lead), lead, ((1, 0, 0, 1), (0, 0, 0, 2), (0, 0, 0, 2)))


def test_concurrent_updates_keep_every_case(store: Store) -> None:
    """Many ingests at once: the compare-and-swap loses nobody's cases."""

    def add(valid_min: int) -> None:
        store.update_verification(RADAR.id, lambda record: (record or Record(RADAR.id, RADAR.thresholds)).with_cases(
            [_case(valid_min, 5), _case(valid_min, 10)], RADAR.thresholds, 9784.0, timedelta(hours=6)))

    threads = [threading.Thread(target=add, args=(5 * i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(cases(store)) == sorted((5 * i, lead) for i in range(12) for lead in (5, 10))


def test_an_unreadable_record_is_started_afresh_by_the_next_ingest(tmp_path: Path) -> None:
    store = Store(open_storage(str(tmp_path / "store"), create=True))
    for step in range(2):
        ingest_file(store, write_step(tmp_path, step), RADAR, time=T0 + minutes(5 * step))
    store.storage.write_bytes("verification/reflectivity.json", b'{"format": "wxtiles-verification/1", "cases": 3}')
    ingest_file(store, write_step(tmp_path, 2), RADAR, time=T0 + minutes(10))
    assert cases(store) == [(10, 5)]


def test_the_window_rolls_on_and_scores_pool_counts(tmp_path: Path) -> None:
    window = timedelta(minutes=30)
    store = Store(open_storage(str(tmp_path / "store"), create=True), Retention(verification=window))
    for valid_min in range(0, 60, 5):
        store.update_verification(RADAR.id, lambda record, v=valid_min: (record or Record(RADAR.id, RADAR.thresholds)).with_cases(
            [_case(v, 5)], RADAR.thresholds, 9784.0, window))
    assert [v for v, _ in cases(store)] == list(range(30, 60, 5))  # older than 30 minutes before the newest: gone
    doc = summary(RADAR, store.load_verification(RADAR.id), window)
    five = doc["leads"][0]
    assert five["cases"] == 6 and doc["window"]["start"] == "2026-11-27T21:25:00Z" and doc["window"]["end"] == "2026-11-27T21:55:00Z"
    # Pooled: 6 hits and 6 correct negatives at 20 dBZ.
    assert five["thresholds"][0] == {"threshold": 20.0, "hits": 6, "misses": 0, "false_alarms": 0, "correct_negatives": 6,
                                     "csi": 1.0, "pod": 1.0, "far": 0.0}
    assert five["thresholds"][1]["csi"] is None  # nothing happened at 30 dBZ: undefined, not 0
