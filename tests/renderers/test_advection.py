"""Departure lattices: accuracy against exact trajectories, seamlessness, chaining and the cache."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from affine import Affine

from renderers.nowcast import advection
from renderers.nowcast.advection import SUBSTEP_S, DepartureCache, MotionField, trace
from renderers.nowcast.tiles import departure_grid

CELL = 20_000.0  # metres, as ingest stores motion
SHAPE = (40, 60)
OMEGA = 2 * np.pi / (6 * 3600)  # one turn in 6 hours
CENTRE = (30 * CELL, -20 * CELL)  # the grid's middle (x, y)


def uniform_field(u: float, v: float) -> MotionField:
    return MotionField(np.full(SHAPE, u, np.float32), np.full(SHAPE, v, np.float32), Affine(CELL, 0, 0.0, 0, -CELL, 0.0))


def rotating_field() -> MotionField:
    """Solid-body rotation, counter-clockwise, about the grid's middle."""
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    x, y = (cols + 0.5) * CELL - CENTRE[0], -(rows + 0.5) * CELL - CENTRE[1]
    return MotionField((-OMEGA * y).astype(np.float32), (OMEGA * x).astype(np.float32), Affine(CELL, 0, 0.0, 0, -CELL, 0.0))


def exact_rotation_departure(x: np.ndarray, y: np.ndarray, lead_s: float) -> tuple[np.ndarray, np.ndarray]:
    angle = -OMEGA * lead_s  # back in time: clockwise
    dx, dy = x - CENTRE[0], y - CENTRE[1]
    return CENTRE[0] + dx * np.cos(angle) - dy * np.sin(angle), CENTRE[1] + dx * np.sin(angle) + dy * np.cos(angle)


def test_uniform_motion_moves_every_point_by_the_same_distance_even_beyond_the_lattice() -> None:
    field = uniform_field(10.0, -5.0)
    departures = trace(field, 1800.0)
    xs = np.array([-5e6, 0.0, 123_456.7, 30 * CELL, 5e6])
    ys = np.array([5e6, -7 * CELL, -20 * CELL, -5e6])
    x0, y0 = departures.on_grid(xs, ys)
    np.testing.assert_allclose(x0 - xs[None, :], -18_000.0, atol=0.01)
    np.testing.assert_allclose(y0 - ys[:, None], 9_000.0, atol=0.01)


@pytest.mark.parametrize("lead_min", [30, 90, 120])
def test_departures_follow_curved_trajectories(lead_min: int) -> None:
    departures = trace(rotating_field(), lead_min * 60.0)
    xs, ys = sample_points()
    x0, y0 = departures.on_grid(xs, ys)
    ex, ey = exact_rotation_departure(*np.meshgrid(xs, ys), lead_min * 60.0)
    error = np.hypot(x0 - ex, y0 - ey)
    travelled = np.hypot(*np.meshgrid(xs - CENTRE[0], ys - CENTRE[1])) * OMEGA * lead_min * 60.0
    assert np.percentile(error, 99) < 0.02 * travelled.max(), (error.max(), travelled.max())


@pytest.mark.parametrize("lead_min", [30, 90])
def test_interpolating_between_lattice_points_stays_close_to_tracing_each_point(lead_min: int) -> None:
    """Motion that turns within 10 cells: the displacement between lattice points is bilinear, not exact."""
    rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
    x, y = (cols + 0.5) * CELL, -(rows + 0.5) * CELL
    field = MotionField((20 * np.sin(2 * np.pi * y / (10 * CELL))).astype(np.float32),
                        (8 * np.cos(2 * np.pi * x / (15 * CELL))).astype(np.float32), Affine(CELL, 0, 0.0, 0, -CELL, 0.0))
    xs, ys = sample_points()
    x0, y0 = trace(field, lead_min * 60.0).on_grid(xs, ys)
    px, py = np.meshgrid(xs, ys)
    ex, ey = px, py
    for _ in range(lead_min // 5):
        ex, ey = field.substep(ex, ey, SUBSTEP_S)
    error = np.hypot(x0 - ex, y0 - ey)
    travelled = np.median(np.hypot(ex - px, ey - py))
    assert np.median(error) < 0.05 * travelled and np.percentile(error, 99) < 0.15 * travelled, (error.max(), travelled)


def sample_points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return np.sort(rng.uniform(10 * CELL, 50 * CELL, 200)), np.sort(rng.uniform(-32 * CELL, -8 * CELL, 150))


def test_a_point_departs_the_same_whatever_it_is_asked_with() -> None:
    """Tiles, their @2x version, points and series ask for different sets of points: the answer per point is one."""
    departures = trace(rotating_field(), 2700.0)
    xs = 7 * CELL + np.arange(512) * 611.4962262
    ys = -9 * CELL - np.arange(512) * 611.4962262
    x_all, y_all = departures.on_grid(xs, ys)
    x_part, y_part = departures.on_grid(xs[256:300], ys[100:356])
    assert np.array_equal(x_part, x_all[100:356, 256:300]) and np.array_equal(y_part, y_all[100:356, 256:300])
    assert departures.at(xs[300], ys[17]) == (x_all[17, 300], y_all[17, 300])
    x_grid, y_grid = departure_grid(departures, xs[0] - 305.7481131, ys[0] + 305.7481131, 611.4962262, 512)
    np.testing.assert_allclose(x_grid, x_all, rtol=0, atol=1e-6)
    np.testing.assert_allclose(y_grid, y_all, rtol=0, atol=1e-6)


@pytest.mark.parametrize("lead_s", [5400.0, 5520.0])
def test_continuing_from_a_shorter_lead_gives_the_same_bits(lead_s: float) -> None:
    field = rotating_field()
    fresh = trace(field, lead_s)
    kept: list[float] = []
    continued = trace(field, lead_s, start=trace(field, 1800.0), keep=lambda d: kept.append(d.lead_s))
    assert continued.lead_s == lead_s and np.array_equal(fresh.shift, continued.shift)
    assert kept == [k * SUBSTEP_S for k in range(7, 18 + 1) if k * SUBSTEP_S < lead_s]


def test_a_start_on_another_lattice_or_past_the_lead_is_not_used() -> None:
    field = rotating_field()
    longer = trace(field, 3600.0)
    assert np.array_equal(trace(field, 1800.0, start=longer).shift, trace(field, 1800.0).shift)
    other = trace(uniform_field(1.0, 1.0), 600.0)
    assert np.array_equal(trace(field, 1800.0, start=other).shift, trace(field, 1800.0).shift)


def test_the_lattice_reaches_beyond_the_motion_grid_as_far_as_trajectories_can() -> None:
    field = uniform_field(30.0, 0.0)
    departures = trace(field, 600.0)
    _, rows, cols = departures.shift.shape
    margin = (cols - SHAPE[1]) // 2
    assert rows - SHAPE[0] == cols - SHAPE[1] and margin * CELL >= field.reach(7200.0) + CELL
    assert departures.left == pytest.approx(-(margin - 0.5) * CELL)


def test_cache_traces_each_lead_once_keeps_the_leads_passed_and_stays_within_its_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    field = rotating_field()
    per_lead = trace(field, SUBSTEP_S).nbytes
    cache = DepartureCache(max_bytes=10 * per_lead)
    calls: list[tuple[float, float | None]] = []
    real_trace = advection.trace

    def counting(field: MotionField, lead_s: float, start=None, keep=None):  # noqa: ANN001, ANN202
        calls.append((lead_s, start.lead_s if start is not None else None))
        return real_trace(field, lead_s, start, keep)

    monkeypatch.setattr(advection, "trace", counting)
    results: list[advection.Departures] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("motion-a", field, 2700.0))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [(2700.0, None)] and all(r is results[0] for r in results)
    assert np.array_equal(results[0].shift, real_trace(field, 2700.0).shift)
    # The shorter leads passed on the way are kept; a longer lead continues from the longest one.
    assert cache.get("motion-a", field, 1200.0) is not None and len(calls) == 1
    cache.get("motion-a", field, 3300.0)
    assert calls[-1] == (3300.0, 2700.0)
    # Another field's key never reuses these; the budget holds whatever is asked.
    for lead in range(1, 30):
        cache.get("motion-b", field, lead * SUBSTEP_S)
    assert cache._entries.currsize <= 10 * per_lead
