"""Contingency counts and scores: the pure part of live verification."""

from __future__ import annotations

import numpy as np

from renderers.nowcast.verification import contingency
from tileserver.core.verification import scores


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
