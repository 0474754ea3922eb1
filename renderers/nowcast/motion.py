"""Motion-field estimation for the radar nowcast (optical flow on reflectivity).

``estimate(frames, **kwargs) -> (2, H, W) float32`` for 2 or more
consecutive, equally spaced dBZ frames (oldest first; NaN = no coverage,
-inf or < 0 dBZ = no echo):

* ``[0]`` = displacement in columns (+x, east), ``[1]`` = in rows (+row,
  south on a north-up grid), grid pixels per frame interval;
* dense and finite everywhere: vectors from the echo region are averaged per
  cell and filled by pysteps-style inverse-distance weighting (power 0.5)
  over the nearest echo cells (``DENSE_NEIGHBOURS`` for the dense methods,
  pySTEPS' ``SPARSE_NEIGHBOURS`` for Lucas-Kanade), relaxing to the
  domain-mean motion far from echoes; no echo at all gives an all-zero field;
* more than 2 frames: the pairwise estimates are averaged (echo-weighted;
  Lucas-Kanade pools its vectors, as pysteps does).

Pre-processing as rainymotion/pysteps-LK do: dBZ clipped to [0, 60] and
scaled to uint8 "brightness"; no echo -> 0.  No coverage is filled with a
smooth continuation of the frame's own echoes (push-pull), not with 0, and
vectors within ``coverage_buffer`` (10) pixels of no coverage are dropped:
a coverage edge is a static (or independently moving) edge that would
otherwise pull the flow.  Grids longer than ``MAX_SIZE`` (2048) px are
reduced by an integer factor before the flow and the vectors scaled back.

Methods (``METHODS``/``get_method``, pySTEPS style): ``"dis"`` (OpenCV Dense
Inverse Search, preset medium with its variational refinement, as rainymotion's Dense;
computed in overlapping horizontal strips, see :func:`dis`), ``"farneback"``
(OpenCV, pysteps' parameters), ``"lucaskanade"``/``"lk"`` (pysteps' sparse
Shi-Tomasi + pyramidal LK with its outlier test).  The dense methods down-
weight cell vectors far from the interpolated field (2 reweighting passes),
which damps the apparent divergence of growing cells.

Default: ``"dis"``, chosen by ``benchmarks/nowcast_skill.py`` on real MRMS radar
in tile space and on synthetic sequences with known motion, against pySTEPS'
Lucas-Kanade and persistence (tables, dates and costs in ``benchmarks/README.md``).

DIS runs with the preset's variational refinement. Without it DIS trails
Farneback and pySTEPS on the CONUS storms; with it on the whole continental grid, its buffers alone would take ingest over
its memory target. The dense methods therefore compute the flow in overlapping
horizontal strips (``strip_rows``, ``strip_margin``): the buffers scale with a
strip, and the stitched field is the whole grid's to about 1 % of the speed on
average (``tests/renderers/test_motion.py``; the measurements on real MRMS
frames, skill and memory are in ``benchmarks/README.md``).

DIS is the default over Farneback because Farneback scores lower on the real
MRMS sequence and takes about twice DIS's CPU time; Farneback is better from
60 to 120 min where cells grow and decay: pass ``method="farneback"`` if 1-2 h
skill on growing convection matters more than cost.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator

import cv2
import numpy as np
from pykdtree.kdtree import KDTree

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "dis",
    "estimate_motion",
    "farneback",
    "get_method",
    "lucaskanade",
    "to_brightness",
]

#: Reflectivity mapped to brightness 0 (and below: 0) ...
DBZ_MIN = 0.0
#: ... and to brightness 255 (and above: 255).
DBZ_MAX = 60.0
#: Images larger than this (pixels on the long side) are reduced by an
#: integer factor before the flow is computed; the motion field is smooth on
#: far larger scales than a few pixels, and this bounds the cost.
MAX_SIZE = 2048
#: The dense flows are computed in horizontal strips of this many rows (on the
#: grid the flow is computed on), so that their buffers (DIS's variational
#: refinement: several times the image) scale with a strip, not with a
#: continental grid; grids up to STRIP_ROWS + 2 * STRIP_MARGIN rows are one strip.
#: Each strip is computed with STRIP_MARGIN rows of context on either side: more
#: than twice the largest displacement expected per frame interval (about 8 px
#: at 60 m/s on ingest's ~5 km grid) plus DIS's patch at its finest scale (8 px
#: at half resolution) and the pre-blur, with room for the refinement's
#: smoothing. A strip of 384 + 2 * 64 rows also gives DIS the pyramid depth of
#: the whole ingest grid (its coarsest scale depends on the image's short side).
STRIP_ROWS = 384
STRIP_MARGIN = 64
#: Echo cells each vector is interpolated from. pySTEPS' 20 is for sparse
#: feature vectors, a few per declustering cell at most; a dense flow gives
#: every echo cell a vector, and 20 of them reach some 2.5 cells (50 km) around,
#: smoothing away motion that differs along a line of storms. 12 (about 2
#: cells) scores better on real radar and no worse on the synthetic sequences
#: (``benchmarks/README.md``).
DENSE_NEIGHBOURS = 12
SPARSE_NEIGHBOURS = 20
#: Grid cells interpolated per k-nearest query: bounds the (cells, k) temporaries
#: to a few MB whatever the grid (ingest runs this beside a whole frame).
IDW_CHUNK = 8192


# --------------------------------------------------------------------------
# Pre-processing
# --------------------------------------------------------------------------


def to_brightness(dbz: np.ndarray, dbz_min: float = DBZ_MIN, dbz_max: float = DBZ_MAX) -> np.ndarray:
    """uint8 "brightness" of a dBZ frame: ``dbz_min..dbz_max`` -> ``0..255``.

    No coverage (NaN), no echo (-inf, or any value < 0 dBZ) and everything at
    or below ``dbz_min`` become 0; values above ``dbz_max`` saturate at 255.
    """
    if not dbz_max > dbz_min:
        raise ValueError("dbz_max must be greater than dbz_min")
    lo = max(float(dbz_min), 0.0)
    scale = np.float32(255.0 / (dbz_max - lo))
    x = np.asarray(dbz, dtype=np.float32) - np.float32(lo)
    with np.errstate(invalid="ignore"):
        x *= scale
        x += np.float32(0.5)
        np.clip(x, 0.0, 255.0, out=x)  # -inf -> 0, NaN stays NaN
    np.nan_to_num(x, copy=False, nan=0.0)
    return x.astype(np.uint8)


def _checked_frames(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames as float32, one at a time: given a generator, no two full-size
    float frames need be alive at once (ingest estimates beside a whole frame)."""
    if isinstance(frames, np.ndarray) and frames.ndim == 2:
        raise ValueError("need a sequence of at least 2 frames, got one 2-D array")
    shape: tuple[int, ...] | None = None
    count = 0
    for frame in frames:
        f = np.asarray(frame, dtype=np.float32)
        if shape is None:
            shape = f.shape
            if len(shape) != 2 or min(shape) < 2:
                raise ValueError(f"frames must be 2-D images, got shape {shape}")
        elif f.shape != shape:
            raise ValueError(f"frames differ in shape: {shape} and {f.shape}")
        count += 1
        yield f
    if count < 2:
        raise ValueError(f"need at least 2 frames, got {count}")


def _push_pull(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Fill where ``den`` (a 0..1 weight) is small with a smooth interpolation of ``num / den``.

    Push-pull on a Gaussian pyramid: weighted means are averaged down to a
    few pixels, then each level keeps its own value where its weight is
    enough and takes the upsampled coarser value where it is not.
    """
    levels = [(num, den)]
    while min(levels[-1][1].shape) > 8:
        n, d = levels[-1]
        levels.append((cv2.pyrDown(n, borderType=cv2.BORDER_REPLICATE),
                       cv2.pyrDown(d, borderType=cv2.BORDER_REPLICATE)))
    n, d = levels[-1]
    total = float(d.sum())
    mean = float(n.sum()) / total if total > 0 else 0.0
    est = np.where(d > 1e-6, n / np.maximum(d, 1e-6), mean).astype(np.float32)
    for n, d in reversed(levels[:-1]):
        up = cv2.pyrUp(est, dstsize=(d.shape[1], d.shape[0]))
        a = np.clip(d * 4.0, 0.0, 1.0)
        own = np.divide(n, d, out=np.zeros_like(n), where=d > 1e-6)
        est = a * own + (1.0 - a) * up
    return est


def _fill_no_coverage(b: np.ndarray, nocov: np.ndarray) -> np.ndarray:
    """Continue the brightness smoothly into no coverage.

    A no-coverage area set to 0 would be a sharp edge that does not move
    with the echoes (or moves with the coverage), and the flow would follow
    it; a smooth continuation of each frame's own echoes is no such feature.
    """
    valid = (~nocov).astype(np.float32)
    fill = _push_pull(b.astype(np.float32) * valid, valid)
    out = b.copy()
    out[nocov] = np.clip(fill[nocov] + 0.5, 0, 255).astype(np.uint8)
    return out


class _Prepared:
    """Brightness images and masks of the frames, possibly on a reduced grid."""

    def __init__(self, frames: Iterable[np.ndarray], dbz_min: float, dbz_max: float, max_size: int | None,
                 coverage_buffer: int) -> None:
        self.images: list[np.ndarray] = []
        self.nocov: list[np.ndarray] = []
        for d in _checked_frames(frames):
            if not self.images:
                h, w = self.shape = d.shape
                self.factor = int(math.ceil(max(h, w) / max_size)) if max_size and max(h, w) > max_size else 1
                f = self.factor
                self.small_shape = (int(math.ceil(h / f)), int(math.ceil(w / f)))
            b = to_brightness(d, dbz_min, dbz_max)
            nc = np.isnan(d).view(np.uint8)
            if f > 1:
                size = (self.small_shape[1], self.small_shape[0])
                b = cv2.resize(b, size, interpolation=cv2.INTER_AREA)
                nc = cv2.resize(nc * np.uint8(255), size, interpolation=cv2.INTER_AREA)
            nc = nc > 0
            if nc.any():
                b = _fill_no_coverage(b, nc)
            self.images.append(b)
            self.nocov.append(nc)
        # Pixels near no coverage see a static edge (the coverage boundary),
        # not the echo: their vectors are not used.
        r = int(coverage_buffer)
        kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1)) if r > 0 else None
        self.usable: list[np.ndarray] = []
        for a, b in zip(self.nocov[:-1], self.nocov[1:]):
            bad = (a | b).view(np.uint8)
            if kernel is not None and bad.any():
                bad = cv2.dilate(bad, kernel)
            self.usable.append(bad == 0)

    def pairs(self):
        for i in range(len(self.images) - 1):
            yield self.images[i], self.images[i + 1], self.usable[i]

    def release_images(self) -> None:
        """Once the pairs are used: only the geometry is needed for :meth:`finish`."""
        self.images, self.nocov, self.usable = [], [], []

    def finish(self, field_small: np.ndarray) -> np.ndarray:
        """(2, h, w) field on the reduced grid -> (2, H, W) in full-grid pixels."""
        if self.factor == 1:
            return field_small
        h, w = self.shape
        out = np.empty((2, h, w), dtype=np.float32)
        for c in range(2):
            out[c] = cv2.resize(field_small[c], (w, h), interpolation=cv2.INTER_LINEAR)
        out *= np.float32(self.factor)
        return out


# --------------------------------------------------------------------------
# Densification: echo-region vectors -> smooth dense field
# --------------------------------------------------------------------------


def _default_cell(shape: tuple[int, int]) -> int:
    return max(4, int(round(max(shape) / 256)))


def _idw_fill(values: np.ndarray, weights: np.ndarray, k: int, power: float, offset: float,
              decay: float, robust: int = 0, robust_c: float = 2.0) -> np.ndarray:
    """Fill a coarse (2, hc, wc) vector grid from its cells with ``weights > 0``.

    pysteps-style inverse-distance weighting over the ``k`` nearest data
    cells (weight ``w / (d + offset) ** power``, distances in cells), blended
    into the weighted domain mean as ``exp(-(d_nearest / decay) ** 2)`` far
    from data, then lightly smoothed.  No data at all gives zeros.
    """
    hc, wc = weights.shape
    data = weights > 0
    n = int(np.count_nonzero(data))
    if n == 0:
        return np.zeros((2, hc, wc), dtype=np.float32)
    rows, cols = np.nonzero(data)
    pts = np.column_stack((rows, cols)).astype(np.float64)
    vals = values[:, rows, cols].T.astype(np.float64)  # (n, 2)
    wts = weights[rows, cols].astype(np.float64)
    mean = (wts[:, None] * vals).sum(axis=0) / wts.sum()
    kk = min(int(k), n)
    tree = KDTree(pts)

    def interpolate(at: np.ndarray, wts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """IDW vectors at points ``at`` (m, 2), and each point's distance to the nearest data cell."""
        v, nearest = np.empty((len(at), 2)), np.empty(len(at))
        for start in range(0, len(at), IDW_CHUNK):
            part = slice(start, start + IDW_CHUNK)
            dist, idx = tree.query(at[part], k=kk)
            if kk == 1:
                dist, idx = dist[:, None], idx[:, None]
            dp = dist + offset
            dp = np.sqrt(dp) if power == 0.5 else np.power(dp, power)
            iw = wts[idx] / dp
            v[part] = np.einsum("gk,gkc->gc", iw, vals[idx]) / iw.sum(axis=1, keepdims=True)
            nearest[part] = dist[:, 0]
        return v, nearest

    for _ in range(int(robust)):
        # iteratively reweighted: vectors far from the interpolated field
        # (e.g. the apparent divergence of a growing cell) count less
        r = np.hypot(*(vals - interpolate(pts, wts)[0]).T)
        c = robust_c * max(float(np.median(r)), 0.02)
        wts = wts / (1.0 + (r / c) ** 2)
    grid = np.column_stack(np.divmod(np.arange(hc * wc), wc)).astype(np.float64)
    v, nearest = interpolate(grid, wts)
    if decay and decay > 0:
        a = np.exp(-((nearest / decay) ** 2))[:, None]
        v = a * v + (1.0 - a) * mean
    out = v.T.reshape(2, hc, wc).astype(np.float32)
    for c in range(2):
        out[c] = cv2.GaussianBlur(out[c], (0, 0), 1.0, borderType=cv2.BORDER_REPLICATE)
    return out


def _upsample(coarse: np.ndarray, cell: int, shape: tuple[int, int]) -> np.ndarray:
    hc, wc = coarse.shape[1:]
    h, w = shape
    out = np.empty((2, h, w), dtype=np.float32)
    for c in range(2):
        out[c] = cv2.resize(coarse[c], (wc * cell, hc * cell), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return out


def _block_mean(a: np.ndarray, cell: int) -> np.ndarray:
    """Mean over ``cell`` x ``cell`` blocks (zero padded at the far edges)."""
    h, w = a.shape[:2]
    hc, wc = -(-h // cell), -(-w // cell)
    pad = ((0, hc * cell - h), (0, wc * cell - w)) + ((0, 0),) * (a.ndim - 2)
    if any(p[1] for p in pad):
        a = np.pad(a, pad)
    # INTER_AREA with an integer factor is the exact block mean (and fast)
    return cv2.resize(a, (wc, hc), interpolation=cv2.INTER_AREA).astype(np.float64)


def _densify_dense(cf: np.ndarray, cw: np.ndarray, cell: int, shape: tuple[int, int], k: int, power: float,
                   offset: float, decay: float, min_weight: float, robust: int = 0) -> np.ndarray:
    """Cell means of the weighted flow (hc, wc, 2) and of the weights (hc, wc) -> smooth (2, H, W) motion field."""
    ok = cw > min_weight
    vals = np.zeros((2,) + cw.shape, dtype=np.float64)
    vals[:, ok] = (cf[ok] / cw[ok, None]).T
    coarse = _idw_fill(vals, np.where(ok, cw, 0.0), k, power, offset, decay, robust)
    return _upsample(coarse, cell, shape)


# --------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------


def strips(rows: int, strip_rows: int | None, margin: int, align: int = 1) -> list[tuple[slice, slice]]:
    """Horizontal bands covering ``rows`` rows: (rows kept, rows computed) per band.

    The kept rows of the bands tile the grid. Each band is computed on
    ``strip_rows + 2 * margin`` rows, the kept ones in the middle, or moved
    inward at the grid's edges, so that every kept row has ``margin`` rows of
    context towards each band edge (or the grid's edge) and every band is the
    same height: a flow whose pyramid depth follows the image size (DIS) is
    computed alike in every band. Band edges fall on multiples of ``align``
    rows (cells of the vector averaging stay within a band). ``strip_rows``
    None, or bands that would be as tall as the grid: one band, the whole grid.
    """
    run = (int(strip_rows) + 2 * int(margin)) if strip_rows else rows
    if run >= rows:
        return [(slice(0, rows), slice(0, rows))]
    n = -(-rows // int(strip_rows))
    # kept rows: bands of (nearly) equal height
    edges = sorted({min(rows, round(i * rows / n / align) * align) for i in range(n)} | {rows})
    bands = []
    for a, b in zip(edges, edges[1:]):
        start = min(max(0, a - margin), rows - run)
        bands.append((slice(a, b), slice(start, start + run)))
    return bands


def _dense_method(flow_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], frames: Iterable[np.ndarray], *,
                  dbz_min: float, dbz_max: float, max_size: int | None, cell: int | None, k: int, power: float,
                  offset: float, decay: float, min_weight: float, coverage_buffer: int,
                  robust: int, strip_rows: int | None = None, strip_margin: int = 0) -> np.ndarray:
    prep = _Prepared(frames, dbz_min, dbz_max, max_size, coverage_buffer)
    h, w = prep.small_shape
    c = int(cell) if cell else _default_cell((h, w))
    hc, wc = -(-h // c), -(-w // c)
    # Echo-weighted flow and echo weight, summed over the pairs as cell means: the
    # vectors are averaged per cell anyway, and no full-grid sum is alive beside the flow.
    cf = np.zeros((hc, wc, 2), dtype=np.float64)
    cw = np.zeros((hc, wc), dtype=np.float64)
    n_pairs = len(prep.images) - 1  # so that min_weight is an echo fraction per pair
    bands = strips(h, strip_rows, int(strip_margin), align=c)
    for prev, nxt, usable in prep.pairs():
        for keep, run in bands:
            wgt = ((prev[keep] > 0) & usable[keep]).astype(np.float32)
            if not wgt.any():
                continue
            inner = slice(keep.start - run.start, keep.stop - run.start)
            flow = flow_fn(prev[run], nxt[run])[inner]
            flow[~np.isfinite(flow)] = 0.0
            flow *= wgt[..., None]
            cells = slice(keep.start // c, -(-keep.stop // c))
            cf[cells] += _block_mean(flow, c)
            cw[cells] += _block_mean(wgt, c)
            del flow, wgt  # not alive through the next band's flow or the densification
    prep.release_images()
    cf /= n_pairs
    cw /= n_pairs
    field = _densify_dense(cf, cw, c, (h, w), k, power, offset, decay, min_weight, robust)
    return prep.finish(field)


def _method(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Make an estimator's output the contract's: contiguous finite float32 (2, H, W)."""

    @functools.wraps(fn)
    def estimate(frames: Iterable[np.ndarray], **kwargs) -> np.ndarray:
        out = np.ascontiguousarray(fn(frames, **kwargs), dtype=np.float32)
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    return estimate


_COMMON_DOC = """
    Common keyword arguments: ``dbz_min``/``dbz_max`` (brightness scaling),
    ``max_size`` (grids longer than this are reduced by an integer factor
    first; None = never), ``cell`` (densification cell in pixels of the
    grid the flow is computed on; default max(4, long side / 256)), ``k``,
    ``power``, ``offset`` (IDW over the k nearest echo cells), ``decay``
    (cells over which the field relaxes to the domain mean away from echoes),
    ``min_weight`` (echo fraction of a cell for its vector to count),
    ``coverage_buffer`` (pixels next to no coverage whose vectors are dropped).
    The dense methods also take ``robust`` (iterations of reweighting that
    down-weights cell vectors far from the interpolated field, such as the
    apparent divergence of a growing cell; 0 = plain IDW), ``strip_rows`` and
    ``strip_margin`` (the flow in horizontal strips, see :func:`strips`).
"""

_DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


@_method
def dis(frames: Iterable[np.ndarray], *, preset: str = "medium", finest_scale: int | None = None,
        patch_size: int | None = None, patch_stride: int | None = None, refine_iterations: int = 5,
        smooth: float = 1.0,
        dbz_min: float = DBZ_MIN, dbz_max: float = DBZ_MAX, max_size: int | None = MAX_SIZE,
        cell: int | None = None, k: int = DENSE_NEIGHBOURS, power: float = 0.5, offset: float = 0.5,
        decay: float = 16.0, min_weight: float = 0.05, coverage_buffer: int = 10, robust: int = 2,
        strip_rows: int | None = STRIP_ROWS, strip_margin: int = STRIP_MARGIN) -> np.ndarray:
    """Dense Inverse Search optical flow (OpenCV ``DISOpticalFlow``), as rainymotion's Dense model.

    ``refine_iterations`` of DIS's variational refinement: the medium preset's
    5. Its buffers are most of DIS's memory, several times the image, so the
    flow is computed in horizontal strips of ``strip_rows`` rows with
    ``strip_margin`` rows of context (see :func:`strips`; None = the whole
    grid at once).

    ``preset`` is "ultrafast", "fast" or "medium"; ``finest_scale``,
    ``patch_size`` and ``patch_stride`` override the preset; ``smooth`` is the
    sigma (pixels) of a Gaussian blur of the brightness images (0 = none).
    """
    try:
        p = _DIS_PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown DIS preset {preset!r}; known: {', '.join(_DIS_PRESETS)}") from None

    # One engine for every strip and pair: calc() keeps no state from one call to the next.
    engine = cv2.DISOpticalFlow_create(p)
    if finest_scale is not None:
        engine.setFinestScale(int(finest_scale))
    if patch_size is not None:
        engine.setPatchSize(int(patch_size))
    if patch_stride is not None:
        engine.setPatchStride(int(patch_stride))
    engine.setVariationalRefinementIterations(int(refine_iterations))

    def flow_fn(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        if smooth:
            prev = cv2.GaussianBlur(prev, (0, 0), smooth)
            nxt = cv2.GaussianBlur(nxt, (0, 0), smooth)
        return engine.calc(prev, nxt, None)

    return _dense_method(flow_fn, frames, dbz_min=dbz_min, dbz_max=dbz_max, max_size=max_size, cell=cell, k=k,
                         power=power, offset=offset, decay=decay, min_weight=min_weight,
                         coverage_buffer=coverage_buffer, robust=robust, strip_rows=strip_rows,
                         strip_margin=strip_margin)


@_method
def farneback(frames: Iterable[np.ndarray], *, pyr_scale: float = 0.5, levels: int = 3, winsize: int = 15,
              iterations: int = 3, poly_n: int = 5, poly_sigma: float = 1.1, gaussian: bool = False,
              dbz_min: float = DBZ_MIN, dbz_max: float = DBZ_MAX, max_size: int | None = MAX_SIZE,
              cell: int | None = None, k: int = DENSE_NEIGHBOURS, power: float = 0.5, offset: float = 0.5,
              decay: float = 16.0, min_weight: float = 0.05, coverage_buffer: int = 10,
              robust: int = 2, strip_rows: int | None = STRIP_ROWS, strip_margin: int = STRIP_MARGIN) -> np.ndarray:
    """Gunnar Farneback's polynomial-expansion flow (``cv2.calcOpticalFlowFarneback``), pysteps' defaults.

    Computed in strips as :func:`dis`; its flow is local enough that the
    stitched field is the whole grid's.
    """
    flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if gaussian else 0

    def flow_fn(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(prev, nxt, None, pyr_scale, levels, winsize, iterations, poly_n,
                                            poly_sigma, flags)

    return _dense_method(flow_fn, frames, dbz_min=dbz_min, dbz_max=dbz_max, max_size=max_size, cell=cell, k=k,
                         power=power, offset=offset, decay=decay, min_weight=min_weight,
                         coverage_buffer=coverage_buffer, robust=robust, strip_rows=strip_rows,
                         strip_margin=strip_margin)


def _local_outliers(xy: np.ndarray, uv: np.ndarray, k: int, thr: float) -> np.ndarray:
    """pysteps ``detect_outliers``: Mahalanobis distance to the k nearest vectors > thr."""
    n = xy.shape[0]
    if n < 3:
        return np.zeros(n, dtype=bool)
    kk = min(int(k) + 1, n)
    _, idx = KDTree(xy).query(xy, k=kk)
    nb = uv[idx[:, 1:]]  # (n, kk-1, 2)
    mu = nb.mean(axis=1)
    d = nb - mu[:, None, :]
    m = kk - 1
    if m < 2:
        return np.zeros(n, dtype=bool)
    sxx = (d[..., 0] ** 2).sum(axis=1) / (m - 1)
    syy = (d[..., 1] ** 2).sum(axis=1) / (m - 1)
    sxy = (d[..., 0] * d[..., 1]).sum(axis=1) / (m - 1)
    det = sxx * syy - sxy**2
    z = uv - mu
    with np.errstate(divide="ignore", invalid="ignore"):
        md2 = (syy * z[:, 0] ** 2 - 2 * sxy * z[:, 0] * z[:, 1] + sxx * z[:, 1] ** 2) / det
    md = np.sqrt(np.where(det > 1e-12, md2, 0.0))  # degenerate (all equal) neighbours: no outlier
    return md > thr


@_method
def lucaskanade(frames: Iterable[np.ndarray], *, max_corners: int = 1000, quality_level: float = 0.01,
                min_distance: int = 10, block_size: int = 5, winsize: int = 50, nr_levels: int = 3,
                max_iter: int = 10, min_eig_thr: float = 1e-4, size_opening: int = 3, nr_std_outlier: float = 3.0,
                k_outlier: int = 30, dbz_min: float = DBZ_MIN, dbz_max: float = DBZ_MAX,
                max_size: int | None = MAX_SIZE, cell: int | None = None, k: int = SPARSE_NEIGHBOURS, power: float = 0.5,
                offset: float = 0.5, decay: float = 16.0, min_weight: float = 0.0,
                coverage_buffer: int = 10) -> np.ndarray:
    """pysteps' sparse Lucas-Kanade: Shi-Tomasi corners tracked with pyramidal LK, densified by IDW.

    Defaults are pysteps' (``max_corners=1000, quality_level=0.01,
    min_distance=10, block_size=5``; ``winsize=50, nr_levels=3``, 10
    iterations; opening of 3 px; local outliers beyond 3 sigma among 30
    neighbours).  Vectors of all frame pairs are pooled, averaged per cell
    (declustering) and interpolated as in the dense methods.
    """
    del min_weight  # every cell with a vector counts
    prep = _Prepared(frames, dbz_min, dbz_max, max_size, coverage_buffer)
    h, w = prep.small_shape
    xy_all, uv_all = [], []
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size_opening, size_opening)) if size_opening > 0 else None
    lk = dict(winSize=(int(winsize), int(winsize)), maxLevel=int(nr_levels),
              criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, int(max_iter), 0.0),
              minEigThreshold=float(min_eig_thr))
    for prev, nxt, usable in prep.pairs():
        if kernel is not None:
            prev = cv2.morphologyEx(prev, cv2.MORPH_OPEN, kernel)
            nxt = cv2.morphologyEx(nxt, cv2.MORPH_OPEN, kernel)
        mask = ((prev > 0) & usable).view(np.uint8)
        if not mask.any():
            continue
        p0 = cv2.goodFeaturesToTrack(prev, int(max_corners), float(quality_level), float(min_distance),
                                     mask=mask, blockSize=int(block_size))
        if p0 is None or len(p0) == 0:
            continue
        p0 = p0.astype(np.float32).reshape(-1, 1, 2)
        p1, st, _ = cv2.calcOpticalFlowPyrLK(prev, nxt, p0, None, **lk)
        good = st.reshape(-1) == 1
        if not good.any():
            continue
        xy_all.append(p0.reshape(-1, 2)[good])
        uv_all.append((p1 - p0).reshape(-1, 2)[good])
    c = int(cell) if cell else _default_cell((h, w))
    hc, wc = -(-h // c), -(-w // c)
    if not xy_all:
        return prep.finish(np.zeros((2, h, w), dtype=np.float32))
    xy = np.concatenate(xy_all).astype(np.float64)
    uv = np.concatenate(uv_all).astype(np.float64)
    fin = np.isfinite(uv).all(axis=1)
    xy, uv = xy[fin], uv[fin]
    if xy.shape[0] == 0:
        return prep.finish(np.zeros((2, h, w), dtype=np.float32))
    keep = ~_local_outliers(xy, uv, k_outlier, nr_std_outlier)
    xy, uv = xy[keep], uv[keep]
    # decluster: mean vector per cell, every occupied cell weighs the same
    ci = np.clip((xy[:, 1] // c).astype(np.int64), 0, hc - 1) * wc + np.clip((xy[:, 0] // c).astype(np.int64), 0, wc - 1)
    cnt = np.bincount(ci, minlength=hc * wc).reshape(hc, wc)
    vals = np.zeros((2, hc, wc))
    for comp in range(2):
        s = np.bincount(ci, weights=uv[:, comp], minlength=hc * wc).reshape(hc, wc)
        vals[comp] = np.where(cnt > 0, s / np.maximum(cnt, 1), 0.0)
    coarse = _idw_fill(vals, (cnt > 0).astype(np.float64), k, power, offset, decay)
    return prep.finish(_upsample(coarse, c, (h, w)))


for _fn in (dis, farneback, lucaskanade):
    _fn.__doc__ = (_fn.__doc__ or "") + _COMMON_DOC
del _fn


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

#: Method names -> ``estimate(frames, **kwargs) -> (2, H, W) float32``.
METHODS: dict[str, Callable[..., np.ndarray]] = {
    "dis": dis,
    "farneback": farneback,
    "lucaskanade": lucaskanade,
    "lk": lucaskanade,
}

#: Chosen by measured skill; see the module docstring.
DEFAULT_METHOD = "dis"


def get_method(name: str) -> Callable[..., np.ndarray]:
    """The estimator called ``name`` (case-insensitive), pySTEPS style."""
    key = str(name).lower()
    if key not in METHODS:
        raise ValueError(f"unknown motion method {name!r}; known: {', '.join(sorted(METHODS))}")
    return METHODS[key]


def estimate_motion(frames: Iterable[np.ndarray], method: str = DEFAULT_METHOD, **kwargs) -> np.ndarray:
    """Motion field (2, H, W) float32 of ``frames`` (oldest first) with ``method``.

    ``[0]`` = columns (+x, east), ``[1]`` = rows (+row, south on a north-up
    grid), in grid pixels per frame interval; dense and finite.
    """
    return get_method(method)(frames, **kwargs)
