"""Live verification: score the nowcasts that were valid when an observation arrives.

A nowcast from base frame B at lead L was served, while B was the newest
frame, as valid at B + L. When the observation at T arrives, every earlier
frame B with T - B one of the layer's verified leads gave such a nowcast: it
is recomputed as the server drew it (B moved along the motion field the
server chose for B, sampled at the departure points as the tiles are) and compared with
T, cell by cell, on one coarse Web Mercator grid over T's footprint. The
contingency tables go into the layer's verification record in the store.

With a feed whose interval does not divide a lead (2-minute MRMS and 5-minute
leads), no observation falls at that lead's valid times and it stays
unscored: scoring a 4- or 6-minute extrapolation under "+5 min" would report
skill for nowcasts nobody was shown.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import timedelta

import cv2
import numpy as np
import rasterio

from renderers.nowcast.advection import MotionField, trace
from renderers.nowcast.tiles import departure_grid, nearest
from renderers.nowcast.verification import contingency
from tileserver.core.layers import Layer
from tileserver.core import grid as mercator
from tileserver.core.reader import read_area, read_motion
from tileserver.store import Catalog, CatalogError, Frame, Store
from tileserver.core.verification import Case, Record, verified_leads

log = logging.getLogger(__name__)

# The verification grid is the finest zoom level's lattice with at most this
# many cells over the frame: ~10 km cells over CONUS, cheap to extrapolate.
MAX_CELLS = 2**19


@dataclass(frozen=True)
class Grid:
    """A north-up mercator grid on a zoom level's global pixel lattice."""

    left: float
    top: float
    pixel: float
    width: int
    height: int


def verification_grid(dataset: rasterio.DatasetReader) -> Grid:
    """The coarse grid over a frame's footprint: the same for every frame of a network."""
    left, bottom, right, top = dataset.bounds
    zoom = mercator.zoom_for(dataset.res[0])
    origin = mercator.ORIGIN
    while True:
        pixel = mercator.resolution(zoom)
        x0 = -origin + math.floor((left + origin) / pixel) * pixel
        y0 = origin - math.floor((origin - top) / pixel) * pixel
        width, height = math.ceil((right - x0) / pixel), math.ceil((y0 - bottom) / pixel)
        if width * height <= MAX_CELLS or zoom == 0:
            return Grid(x0, y0, pixel, width, height)
        zoom -= 1


def extrapolate(base: np.ndarray, field: MotionField, grid: Grid, lead_s: float) -> np.ndarray:
    """The nowcast ``lead_s`` after ``base`` (values on ``grid``), drawn as nowcast tiles are.

    Each cell takes the base value at its departure point, interpolated between
    the four cells around it, unless one of them has no coverage or no echo:
    then the cell the point falls in (``renderers/nowcast/tiles.py`` does the
    same on codes). Departures off the grid (beyond the frame) get NaN, no coverage.
    """
    x0, y0 = departure_grid(trace(field, lead_s), grid.left, grid.top, grid.pixel, grid.width, grid.height)
    col = ((x0 - grid.left) / grid.pixel - 0.5).astype(np.float32)
    row = ((grid.top - y0) / grid.pixel - 0.5).astype(np.float32)
    fallen_in = nearest(base, col, row, float("nan"))
    # A NaN (no coverage) or -inf (no echo) among the four cells makes the blend non-finite.
    blended = cv2.remap(base, col, row, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
    return np.where(np.isfinite(blended), blended, fallen_in)


def _values(path: str, layer: Layer, grid: Grid) -> np.ndarray:
    with rasterio.open(path) as dataset:
        codes = read_area(dataset, grid.left, grid.top, grid.pixel, grid.width, grid.height)
    return layer.encoding.decode(codes)


def score_observation(store: Store, layer: Layer, frame: Frame, catalog: Catalog, skip: set[int] | frozenset[int] = frozenset(),
                      source: str | None = None) -> tuple[list[Case], float]:
    """Cases for the nowcasts valid at ``frame``'s time, and the grid's cell size (m).

    ``skip``: leads already scored at this time. ``source``: the observation's
    COG if it is at hand locally (at ingest), instead of reading it back from the store.
    """
    by_time = {f.time: f for f in catalog.frames if f.run is None}
    plans: list[tuple[int, Frame, str]] = []
    for lead in verified_leads(layer):
        base = by_time.get(frame.time - timedelta(minutes=lead))
        motion = catalog.nowcast_motion(base) if base is not None and lead not in skip else None
        if base is not None and motion is not None:
            plans.append((lead, base, motion))
    if not plans:
        return [], 0.0
    observed_path = source or store.storage.gdal_path(frame.key)
    with rasterio.open(observed_path) as dataset:
        grid = verification_grid(dataset)
    observed = _values(observed_path, layer, grid)
    cases = []
    for lead, base, motion_key in plans:
        with rasterio.open(store.storage.gdal_path(motion_key)) as dataset:
            field = MotionField(*read_motion(dataset))
        forecast = extrapolate(_values(store.storage.gdal_path(base.key), layer, grid), field, grid, lead * 60.0)
        counts = contingency(forecast, observed, layer.thresholds)
        cases.append(Case(frame.time, base.time, lead, tuple(tuple(int(v) for v in row) for row in counts)))  # type: ignore[misc]
    return cases, grid.pixel


def verify_observation(store: Store, layer: Layer, frame: Frame, source: str | None = None) -> list[Case]:
    """Score the nowcasts valid at a newly published observation; store them in the rolling window.

    ``source``: the frame's COG as built by this ingest, if still at hand.
    """
    if not layer.nowcast or not layer.thresholds or frame.run is not None:
        return []
    try:
        record = store.load_verification(layer.id)
    except CatalogError:
        record = None  # unreadable: update_verification starts it afresh
    skip = record.scored(frame.time) if record is not None else set()
    cases, cell_m = score_observation(store, layer, frame, store.load_catalog(layer.id), skip, source)
    if not cases:
        return []

    def add(current: Record | None) -> Record:
        return (current or Record(layer.id, layer.thresholds)).with_cases(cases, layer.thresholds, cell_m, store.retention.verification)

    store.update_verification(layer.id, add)
    return cases
