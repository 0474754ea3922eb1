"""Estimate a radar layer's motion when a new observation arrives.

The motion field is what nowcast tiles are extrapolated with. It is estimated
once per frame, from this frame and the ones some 5 and 10 minutes before it
(chosen by time, whatever the feed's cadence), on the finest Web Mercator grid
the flow takes whole (~5 km over the continental US, the radar's own ~1 km over
a country's composite), with one vector per ~20 km cell, and stored beside the
frame as a small two-band GeoTIFF of velocities in mercator metres per second
(band 1 eastward, band 2 northward).
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from renderers.nowcast.motion import MAX_SIZE, estimate_motion
from tileserver.core import grid
from tileserver.core.layers import Layer
from tileserver.core.reader import read_area
from tileserver.store import Catalog, Store

log = logging.getLogger(__name__)

# Estimate on the finest zoom whose grid spans the frame in at most MAX_SIZE
# pixels (the flow's own limit), and never coarser than zoom 5 (~5 km): over the
# continental US that is zoom 5, where echoes move a pixel or more in 5 minutes
# (a ~2.5 km grid measured no better on real MRMS, at twice the cost); over a
# ~1000 km domain it is the radar's own ~1 km cells, where a 10 m/s echo would
# move under a 5 km pixel between frames and be measured coarsely.
COARSEST_ZOOM = 5
# Stored on cells this many estimation pixels wide.
STORE_FACTOR = 4
# Flow vectors are averaged over cells this wide (mercator metres) before they
# are interpolated: pySTEPS' 20 km declustering scale. Coarser cells smooth away
# the different motions along a squall line.
VECTOR_CELL = 20_000.0
# Frames further apart than this say little about the present motion.
MAX_GAP = timedelta(minutes=20)
MIN_GAP = timedelta(minutes=1)
# Frames used for one motion field (this one included), and the time between them.
FRAMES = 3
FRAME_STEP = timedelta(minutes=5)


def _dbz(values: np.ndarray, layer: Layer) -> np.ndarray:
    """The motion estimator works on reflectivity; rain rates go back through Z = 200 R^1.6."""
    if layer.units == "dBZ":
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        dbz = 10 * np.log10(200.0 * np.power(np.maximum(values, 0.0), 1.6))
    return np.where(np.isnan(values), np.nan, np.where(values > 0, dbz, -np.inf)).astype(np.float32)


def estimation_pixel(width: float, height: float, cell: float) -> float:
    """Metres per pixel of the grid a ``width`` x ``height`` m frame of ``cell`` m cells has its motion estimated on.

    The finest zoom from ``COARSEST_ZOOM`` on whose grid the frame is at most
    ``MAX_SIZE`` pixels a side, and no finer than the frame's own cells.
    """
    zoom = COARSEST_ZOOM
    while grid.resolution(zoom + 1) >= cell * 0.99 and max(width, height) / grid.resolution(zoom + 1) <= MAX_SIZE:
        zoom += 1
    return max(grid.resolution(zoom), cell)


def previous_frames(catalog: Catalog, time: datetime) -> list[tuple[datetime, str]]:
    """Earlier frames for the motion of the frame at ``time``, oldest first, chosen by time span.

    Frames are taken ``step`` apart, back from ``time``: the multiple of the
    feed's own interval nearest to ``FRAME_STEP``, so a 2-minute and a 5-minute
    feed both give pairs some 5 minutes apart, in which echoes move far enough
    to be measured and change little. Up to ``FRAMES - 1`` of them, as long as
    each is found within a fifth of a step of where it should be.
    """
    earlier = [f for f in catalog.frames if MIN_GAP <= time - f.time <= MAX_GAP]
    if not earlier:
        return []
    feed = time - earlier[-1].time
    step = feed * max(1, math.floor(FRAME_STEP / feed + 0.5))
    chosen: list[tuple[datetime, str]] = []
    for k in range(1, FRAMES):
        want = time - k * step
        near = min(earlier, key=lambda f: abs(f.time - want))
        if abs(near.time - want) > step * 0.2 or time - near.time > MAX_GAP:
            break
        chosen.insert(0, (near.time, near.key))
    # An irregular feed with nothing near the step: the newest frame before, as the next best.
    return chosen or [(earlier[-1].time, earlier[-1].key)]


def build_motion(store: Store, layer: Layer, cog: str | Path, time: datetime, out: Path,
                 catalog: Catalog | None = None) -> Path | None:
    """Write the motion field of the frame at ``cog`` to ``out``; None without earlier frames.

    ``catalog``: the layer's catalog if the caller has just read it (one store read fewer).
    """
    if not layer.nowcast:
        return None
    earlier = previous_frames(catalog or store.load_catalog(layer.id), time)
    if not earlier:
        return None
    with rasterio.open(cog) as new:
        left, bottom, right, top = new.bounds
        target = estimation_pixel(right - left, top - bottom, new.res[0])
        width = max(8, round((right - left) / target))
        height = max(8, round((top - bottom) / target))
        pixel = (right - left) / width
        grids = []
        for _, key in earlier:
            with rasterio.open(store.storage.gdal_path(key)) as old:
                grids.append(read_area(old, left, top, pixel, width, height))
        grids.append(read_area(new, left, top, pixel, width, height))
    step_s = (time - earlier[-1][0]).total_seconds()
    # Decoded one at a time as the estimator takes them: ingest's peak memory is
    # during estimation, and four float frames were 33 MB of it.
    frames = (_dbz(layer.encoding.decode(codes), layer) for codes in grids)
    reduced = pixel * max(1, math.ceil(max(width, height) / MAX_SIZE))  # the grid the flow is computed on
    cell = max(1, round(VECTOR_CELL / reduced))
    flow = estimate_motion(frames, cell=cell)  # pixels per frame interval: +col east, +row south
    factor = STORE_FACTOR if min(width, height) >= 8 * STORE_FACTOR else 1
    u = _block_mean(flow[0], factor) * np.float32(pixel / step_s)
    v = _block_mean(-flow[1], factor) * np.float32(pixel / step_s)
    transform = Affine(pixel * factor, 0, left, 0, -pixel * factor, top)
    with rasterio.open(
        out, "w", driver="GTiff", width=u.shape[1], height=u.shape[0], count=2, dtype="float32",
        crs="EPSG:3857", transform=transform, compress="deflate", predictor=3,
    ) as dst:
        dst.write(np.stack([u, v]).astype(np.float32))
        dst.update_tags(frame_interval_s=str(step_s), frames=str(len(grids)))
    return out


def _block_mean(field: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return field.astype(np.float32)
    rows, cols = (field.shape[0] // factor) * factor, (field.shape[1] // factor) * factor
    trimmed = field[:rows, :cols]
    return trimmed.reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3)).astype(np.float32)


def ensure_latest_motion(store: Store, layer: Layer) -> None:
    """Give the layer's newest frame a motion field if it has none yet.

    Frames can arrive newest first (a backfill); the newest is the one
    nowcasts start from, so it gets its motion once older frames are in.
    """
    if not layer.nowcast:
        return
    catalog = store.load_catalog(layer.id)
    if not catalog.frames or catalog.frames[-1].motion:
        return
    latest = catalog.frames[-1]
    out = store.storage.temporary_path(".motion.tif")
    try:
        if build_motion(store, layer, store.storage.gdal_path(latest.key), latest.time, out, catalog):
            store.attach_motion(layer.id, latest, out)
    finally:
        out.unlink(missing_ok=True)
