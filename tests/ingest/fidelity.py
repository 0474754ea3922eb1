"""Do served values equal the source's? The harness behind tests/ingest/test_real_files.py
and benchmarks/real_files.py.

The truth is each source file as its own reader sees it (GDAL, netCDF4 or h5py),
with packing applied and units converted by code written here, apart from
wxtiles' decoder. Points are sampled over the source grid; each is moved to the
centre of the stored Web Mercator cell that holds it, so the served value has
one right answer: the source field at that centre. A served value matches when
it lies within the range of the source's 3 x 3 neighbourhood around the centre,
widened by the layer's storage step (nearest resampling takes one of those
cells; bilinear interpolates between them). The error is the distance outside
that range. Coverage agrees when a cell whose neighbourhood is wholly valid is
served with a value, and one whose neighbourhood is wholly empty is served empty.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
import mercantile
import numpy as np
from affine import Affine
from pyproj import CRS, Transformer

from tileserver.core.layers import get_layer
from tileserver.core.timeutil import format_utc

WEB_MERCATOR_MAX_LAT = 85.0511287798066


@dataclass(frozen=True)
class Truth:
    """One time step of a source field in the layer's units: NaN = no coverage, -inf = no echo."""

    time: datetime
    values: np.ndarray
    crs: CRS
    transform: Affine  # pixel corner to source coordinates, as GDAL's geotransform


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    layer: str
    truths: Callable[[], list[Truth]]
    args: tuple[str, ...] = ()  # extra `wxtiles ingest` arguments


@dataclass
class Result:
    case: str
    layer: str
    frames: int = 0
    points: int = 0  # sampled cells with a value in the source
    matched: int = 0
    errors: list[float] = field(default_factory=list)
    # |served - the source interpolated at the cell centre| (bilinear, or the nearest cell), for the table
    interpolation_errors: list[float] = field(default_factory=list)
    holes: int = 0  # wholly valid in the source, empty when served
    spurious: int = 0  # wholly empty in the source, a value when served
    empty_checked: int = 0
    tile_mismatches: int = 0  # .npy tile pixel differs from /point at the same cell

    @property
    def fraction(self) -> float:
        return self.matched / self.points if self.points else 0.0

    @property
    def median_error(self) -> float:
        return float(np.median(self.errors)) if self.errors else 0.0

    @property
    def max_error(self) -> float:
        return float(np.max(self.errors)) if self.errors else 0.0

    @property
    def median_interpolation_error(self) -> float:
        return float(np.median(self.interpolation_errors)) if self.interpolation_errors else 0.0

    @property
    def max_interpolation_error(self) -> float:
        return float(np.max(self.interpolation_errors)) if self.interpolation_errors else 0.0


def _interpolated(truth: Truth, col: float, row: float, nearest: bool) -> float:
    """The source at fractional pixel position (col, row): its cell, or bilinear between cell centres."""
    block = _neighbourhood(truth, col, row)
    if block is None:
        return math.nan
    if nearest:
        return float(block[1, 1])
    fx, fy = col - 0.5 - math.floor(col - 0.5), row - 0.5 - math.floor(row - 0.5)
    # The 2 x 2 cell centres around the point sit in the block's corner nearest to it.
    c0 = 0 if col - math.floor(col) < 0.5 else 1
    r0 = 0 if row - math.floor(row) < 0.5 else 1
    quad = block[r0:r0 + 2, c0:c0 + 2]
    return float(quad[0, 0] * (1 - fx) * (1 - fy) + quad[0, 1] * fx * (1 - fy) + quad[1, 0] * (1 - fx) * fy + quad[1, 1] * fx * fy)


def _neighbourhood(truth: Truth, col: float, row: float) -> np.ndarray | None:
    """The 3 x 3 source cells around fractional pixel position (col, row); None off the grid."""
    rows, cols = truth.values.shape
    c, r = int(math.floor(col)), int(math.floor(row))
    global_grid = truth.crs.is_geographic and abs(abs(truth.transform.a) * cols - 360.0) < abs(truth.transform.a) * 1.01
    if not 0 <= r < rows or (not global_grid and not 0 <= c < cols):
        return None
    rr = np.clip(np.arange(r - 1, r + 2), 0, rows - 1)
    cc = np.arange(c - 1, c + 2)
    cc = cc % cols if global_grid else np.clip(cc, 0, cols - 1)
    return truth.values[np.ix_(rr, cc)]


def _sample_cells(truth: Truth, count: int, rng: np.random.Generator, focus_valid: bool) -> list[tuple[float, float]]:
    """Random source cell centres (lon, lat) within Web Mercator's latitudes; half on valid cells when asked."""
    rows, cols = truth.values.shape
    to_lonlat = Transformer.from_crs(truth.crs, "EPSG:4326", always_xy=True)
    picks: list[tuple[int, int]] = [(int(rng.integers(rows)), int(rng.integers(cols))) for _ in range(count)]
    if focus_valid:
        valid = np.argwhere(np.isfinite(truth.values))
        if len(valid):
            chosen = valid[rng.integers(len(valid), size=count // 2)]
            picks[: count // 2] = [(int(r), int(c)) for r, c in chosen]
    out = []
    for r, c in picks:
        x, y = truth.transform * (c + 0.5, r + 0.5)
        lon, lat = to_lonlat.transform(x, y)
        if math.isfinite(lon) and math.isfinite(lat) and abs(lat) < WEB_MERCATOR_MAX_LAT - 0.01:
            out.append((((lon + 180.0) % 360.0) - 180.0, lat))
    return out


def _cell_centre(lon: float, lat: float, zoom: int) -> tuple[mercantile.Tile, int, int, float, float]:
    """The stored cell at ``zoom`` holding (lon, lat): its tile, pixel and centre lon/lat."""
    tile = mercantile.tile(lon, lat, zoom)
    left, bottom, right, top = mercantile.xy_bounds(tile)
    x, y = mercantile.xy(lon, lat)
    size = (right - left) / 256
    i = min(255, int((x - left) / size))
    j = min(255, int((top - y) / size))
    centre_lon, centre_lat = mercantile.lnglat(left + (i + 0.5) * size, top - (j + 0.5) * size)
    return tile, i, j, centre_lon, centre_lat


def measure(case: Case, base_url: str, points_per_frame: int = 300, seed: int = 0, max_frames: int = 3) -> Result:
    """Sample each ingested frame of ``case`` through ``/point`` and ``.npy`` tiles of a running server."""
    result = Result(case.name, case.layer)
    rng = np.random.default_rng(seed)
    with httpx.Client(base_url=base_url, timeout=60) as client:
        info = client.get(f"/api/layers/{case.layer}").raise_for_status().json()
        truths = case.truths()
        if len(truths) > max_frames:  # first, middle and last steps: order and times must line up
            truths = [truths[0], truths[len(truths) // 2], truths[-1]]
        for truth in truths:
            stamp = format_utc(truth.time)
            assert stamp in info["frames"], f"{case.name}: no frame at {stamp} (frames: {info['frames'][:5]}...)"
            result.frames += 1
            _measure_frame(client, case, truth, info, stamp, points_per_frame, rng, result)
    return result


def _measure_frame(
    client: httpx.Client, case: Case, truth: Truth, info: dict, stamp: str, count: int, rng: np.random.Generator, result: Result,
) -> None:
    zoom = int(info["maxzoom"])
    layer = get_layer(case.layer)
    step = layer.encoding.scale
    nearest = layer.resampling == "nearest"
    to_source = Transformer.from_crs("EPSG:4326", truth.crs, always_xy=True)
    inverse = ~truth.transform
    tiles: dict[mercantile.Tile, np.ndarray] = {}
    per_tile: dict[mercantile.Tile, list] = defaultdict(list)
    for lon, lat in _sample_cells(truth, count, rng, focus_valid=True):
        tile, i, j, centre_lon, centre_lat = _cell_centre(lon, lat, zoom)
        x, y = to_source.transform(centre_lon, centre_lat)
        if truth.crs.is_geographic:  # a grid on 0..360 or across 180 deg: the same meridian, its longitude
            x = truth.transform.c + (x - truth.transform.c) % 360.0
        col, row = inverse * (x, y)
        block = _neighbourhood(truth, col, row)
        if block is None:
            continue
        response = client.get(f"/api/layers/{case.layer}/point", params={"lon": centre_lon, "lat": centre_lat, "time": stamp})
        response.raise_for_status()
        body = response.json()
        served = body["value"]
        served = -math.inf if body["status"] == "no-echo" else (math.nan if served is None else float(served))
        per_tile[tile].append((i, j, served))
        finite = block[np.isfinite(block)]
        valid = ~np.isnan(block)
        if valid.all() and math.isnan(served):
            result.holes += 1
        if not valid.any():
            result.empty_checked += 1
            if not math.isnan(served):
                result.spurious += 1
            continue
        if math.isnan(served):
            continue  # at the edge of coverage: either answer is right
        result.points += 1
        if math.isinf(served):
            error = 0.0 if np.isneginf(block).any() else math.inf
        elif finite.size == 0:
            error = math.inf  # served a value where the source saw no echo
        else:
            low, high = float(finite.min()), float(finite.max())
            error = max(low - served, served - high, 0.0)
        result.errors.append(error)
        expected = _interpolated(truth, col, row, nearest)
        if math.isfinite(expected) and math.isfinite(served):
            result.interpolation_errors.append(abs(served - expected))
        if error <= step + 1e-6:
            result.matched += 1
    for tile, cells in per_tile.items():
        if tile not in tiles:
            response = client.get(f"/tiles/{case.layer}/{stamp}/{tile.z}/{tile.x}/{tile.y}.npy")
            response.raise_for_status()
            tiles[tile] = np.load(io.BytesIO(response.content))
        for i, j, served in cells:
            pixel = float(tiles[tile][j, i])
            same = (math.isnan(pixel) and math.isnan(served)) or pixel == served or abs(pixel - served) <= 1e-3
            result.tile_mismatches += 0 if same else 1
