"""Categorical verification of nowcasts: arrays in, contingency counts out.

An event is a value strictly above the threshold, as in pySTEPS
(``pysteps.verification.detcatscores``). Unlike pySTEPS, cells where either
field has no coverage (NaN) are left out: pySTEPS counts a NaN as "no event",
which turns a radar outage into misses and false alarms. "No echo" (-inf)
is measured dry and counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def contingency(forecast: np.ndarray, observed: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Hits, misses, false alarms and correct negatives per threshold: int64 (len(thresholds), 4).

    The columns are in the order of ``tileserver.core.verification.COUNTS``.
    """
    if forecast.shape != observed.shape:
        raise ValueError(f"forecast {forecast.shape} and observation {observed.shape} differ in shape")
    both = ~(np.isnan(forecast) | np.isnan(observed))
    f, o = forecast[both], observed[both]
    table = np.zeros((len(thresholds), 4), dtype=np.int64)
    for i, threshold in enumerate(thresholds):
        fy, oy = f > threshold, o > threshold
        hits = int(np.count_nonzero(fy & oy))
        forecast_yes, observed_yes = int(np.count_nonzero(fy)), int(np.count_nonzero(oy))
        table[i] = (hits, observed_yes - hits, forecast_yes - hits, f.size - forecast_yes - observed_yes + hits)
    return table
