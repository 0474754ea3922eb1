"""Categorical verification of nowcasts: arrays in, contingency counts and scores out.

An event is a value strictly above the threshold, as in pySTEPS
(``pysteps.verification.detcatscores``). Unlike pySTEPS, cells where either
field has no coverage (NaN) are left out: pySTEPS counts a NaN as "no event",
which turns a radar outage into misses and false alarms. "No echo" (-inf)
is measured dry and counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from renderers.nowcast.advection import MotionField, backtrack

# Columns of a contingency table row.
COUNTS = ("hits", "misses", "false_alarms", "correct_negatives")


def contingency(forecast: np.ndarray, observed: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Hits, misses, false alarms and correct negatives per threshold: int64 (len(thresholds), 4)."""
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


def scores(hits: int, misses: int, false_alarms: int) -> dict[str, float | None]:
    """CSI, POD and FAR; None where the denominator is zero (no event forecast or observed)."""

    def ratio(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None

    return {
        "csi": ratio(hits, hits + misses + false_alarms),
        "pod": ratio(hits, hits + misses),
        "far": ratio(false_alarms, hits + false_alarms),
    }


def extrapolate(base: np.ndarray, field: MotionField, left: float, top: float, pixel: float, lead_s: float, nodata: float = np.nan) -> np.ndarray:
    """The nowcast ``lead_s`` after ``base``, on base's own north-up mercator grid.

    ``base`` holds values (or codes) on cells of ``pixel`` metres anchored at
    (``left``, ``top``). Each cell takes the base cell nearest its departure
    point, as nowcast tiles do; departures off the grid get ``nodata``.
    """
    rows, cols = base.shape
    x, y = np.meshgrid(left + (np.arange(cols) + 0.5) * pixel, top - (np.arange(rows) + 0.5) * pixel)
    x0, y0 = backtrack(field, x, y, lead_s)
    col = ((x0 - left) / pixel - 0.5).astype(np.float32)
    row = ((top - y0) / pixel - 0.5).astype(np.float32)
    return cv2.remap(base, col, row, interpolation=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=float(nodata))
