"""Contingency counts, scores and grid extrapolation: the pure part of live verification."""

from __future__ import annotations

import numpy as np
from affine import Affine

from renderers.nowcast.advection import MotionField
from renderers.nowcast.verification import contingency, extrapolate, scores


def test_counts_follow_pysteps_event_convention_strictly_above_threshold() -> None:
    forecast = np.array([25.0, 20.0, 10.0, 30.0, -np.inf], dtype=np.float32)
    observed = np.array([21.0, 25.0, 25.0, 19.0, -np.inf], dtype=np.float32)
    # At 20: 20.0 is not an event (value > threshold), -inf ("no echo") is a measured "no".
    assert contingency(forecast, observed, [20.0]).tolist() == [[1, 2, 1, 1]]
    assert contingency(forecast, observed, [19.0]).tolist() == [[2, 1, 1, 1]]  # 19 is not above 19 either


def test_cells_without_coverage_in_either_field_are_left_out() -> None:
    forecast = np.array([np.nan, 30.0, 30.0, 0.0], dtype=np.float32)
    observed = np.array([30.0, np.nan, 30.0, 0.0], dtype=np.float32)
    # pySTEPS would count the first cell a miss and the second a false alarm.
    assert contingency(forecast, observed, [20.0, 40.0]).tolist() == [[1, 0, 0, 1], [0, 0, 0, 2]]


def test_scores_from_counts_and_undefined_ratios_are_none() -> None:
    assert scores(6, 2, 2) == {"csi": 0.6, "pod": 0.75, "far": 0.25}
    assert scores(0, 0, 0) == {"csi": None, "pod": None, "far": None}
    assert scores(0, 3, 0) == {"csi": 0.0, "pod": 0.0, "far": None}


def test_extrapolate_moves_a_field_with_uniform_motion_and_leaves_inflow_without_coverage() -> None:
    pixel = 1000.0
    base = np.full((40, 60), 0.0, dtype=np.float32)
    base[10:20, 5:15] = 35.0
    # 2 cells eastward per 10 minutes, 1 cell southward.
    u = np.full((4, 6), 2 * pixel / 600, dtype=np.float32)
    v = np.full((4, 6), -1 * pixel / 600, dtype=np.float32)
    field = MotionField(u, v, Affine(10 * pixel, 0, 0.0, 0, -10 * pixel, 40 * pixel))
    moved = extrapolate(base, field, 0.0, 40 * pixel, pixel, 1800.0)
    expected = np.full_like(base, 0.0)
    expected[13:23, 11:21] = 35.0
    expected[:, :6] = np.nan  # departures west of the grid: nothing known there
    expected[:3, :] = np.nan
    np.testing.assert_array_equal(moved, expected)
