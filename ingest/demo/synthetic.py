"""Synthetic weather fields for demos and tests.

Everything in this module is **synthetic**: generated from a seeded random
number generator, not observed or forecast.  The fields are designed to
*look* like the real products so that the ingest, tiling and rendering code
is exercised on realistic value ranges, spatial scales and masks:

* :func:`radar_sequence` mimics NOAA MRMS ``MergedReflectivityQCComposite``
  (composite reflectivity in dBZ on the 0.01 deg CONUS lat/lon grid, row 0 =
  north): mostly ``-99`` ("no echo"), storm systems that move, grow and decay,
  stratiform rain shields (15-35 dBZ) and convective cores above 50 dBZ, and
  ``-999`` where there is no radar coverage (far offshore, the corners of the
  domain).  Values are quantised to 0.5 dBZ like MRMS.
* :func:`temperature_field` gives a plausible 2 m temperature in Kelvin.
* :func:`wind_components` gives plausible 10 m wind components in m/s.

All functions are pure numpy and deterministic for a given ``seed``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterator

import numpy as np

__all__ = [
    "DEFAULT_BOUNDS",
    "DEFAULT_SHAPE",
    "NO_COVERAGE",
    "NO_ECHO",
    "ECHO_THRESHOLD_DBZ",
    "MAX_DBZ",
    "grid_centres",
    "radar_coverage",
    "radar_sequence",
    "temperature_field",
    "wind_components",
]

Bounds = tuple[float, float, float, float]

#: MRMS CONUS grid: 7000 x 3500 cells of 0.01 deg.
DEFAULT_SHAPE: tuple[int, int] = (3500, 7000)
#: (west, south, east, north) cell *edges* of the MRMS CONUS grid.
DEFAULT_BOUNDS: Bounds = (-130.0, 20.0, -60.0, 55.0)

#: MRMS code for "radar sees the spot but there is no echo" (missing in the MRMS table).
NO_ECHO = -99.0
#: MRMS code for "no radar coverage".
NO_COVERAGE = -999.0
#: Synthetic echoes weaker than this are reported as :data:`NO_ECHO`.
ECHO_THRESHOLD_DBZ = 5.0
#: Upper clip of the synthetic reflectivity.
MAX_DBZ = 67.0

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320

# Approximate (lat, lon) of a subset of WSR-88D sites.  Only used to draw a
# plausible coverage footprint for the synthetic mosaic; not authoritative.
_RADAR_SITES = np.array(
    [
        (35.33, -97.28), (32.57, -97.30), (29.47, -95.08), (30.34, -89.83),
        (33.17, -86.77), (33.36, -84.57), (25.61, -80.41), (27.71, -82.40),
        (30.48, -81.70), (32.66, -81.04), (33.99, -78.43), (36.98, -77.01),
        (38.98, -77.48), (39.95, -74.41), (40.87, -72.86), (41.96, -71.14),
        (43.89, -70.26), (46.04, -67.81), (42.59, -74.06), (42.95, -78.74),
        (41.41, -81.86), (42.70, -83.47), (42.89, -85.54), (41.60, -88.08),
        (42.97, -88.55), (44.85, -93.57), (46.84, -92.21), (46.53, -87.55),
        (43.59, -96.73), (46.77, -100.76), (47.53, -97.33), (45.46, -98.41),
        (44.13, -102.83), (48.21, -106.63), (45.85, -108.61), (47.46, -111.39),
        (47.04, -113.99), (47.68, -117.63), (48.19, -122.50), (45.71, -122.97),
        (42.08, -122.72), (40.50, -124.29), (38.50, -121.68), (37.16, -121.90),
        (34.41, -119.18), (32.92, -117.04), (32.50, -114.66), (33.29, -111.67),
        (31.89, -110.63), (35.15, -106.82), (31.87, -106.70), (31.94, -102.19),
        (35.23, -101.71), (33.65, -101.81), (29.70, -98.03), (25.92, -97.42),
        (27.78, -97.51), (32.45, -93.84), (34.84, -92.26), (37.24, -93.40),
        (38.81, -94.26), (37.65, -97.44), (37.76, -99.97), (39.37, -101.70),
        (40.32, -98.44), (41.32, -96.37), (41.96, -100.58), (41.15, -104.81),
        (39.79, -104.55), (38.46, -104.18), (39.06, -108.21), (41.26, -112.45),
        (37.59, -112.86), (35.70, -114.89), (40.74, -116.80), (39.75, -119.46),
        (43.49, -116.24), (43.11, -112.69), (43.07, -108.48), (41.73, -93.72),
        (41.61, -90.58), (38.70, -90.68), (40.15, -89.34), (39.71, -86.28),
        (37.98, -85.94), (36.25, -86.56), (36.17, -83.40), (35.34, -89.87),
        (32.32, -90.08), (30.68, -88.24), (30.40, -84.33), (35.67, -78.49),
        (37.02, -80.27), (38.31, -81.72), (40.53, -80.22), (39.42, -83.82),
        (40.92, -78.00), (43.76, -75.68), (44.51, -73.17), (28.11, -80.65),
        (24.60, -81.70), (34.36, -98.98), (36.74, -98.13), (26.00, -98.80),
    ],
    dtype=np.float64,
)
#: Radius of the synthetic coverage disc around each site.
COVERAGE_RADIUS_KM = 320.0


# --------------------------------------------------------------------------
# Grid helpers
# --------------------------------------------------------------------------


def grid_centres(shape: tuple[int, int], bounds: Bounds = DEFAULT_BOUNDS) -> tuple[np.ndarray, np.ndarray]:
    """Return 1-D ``(lon, lat)`` of cell centres; ``lat`` runs north to south (row 0 = north)."""
    ny, nx = shape
    west, south, east, north = bounds
    dx = (east - west) / nx
    dy = (north - south) / ny
    lon = west + (np.arange(nx) + 0.5) * dx
    lat = north - (np.arange(ny) + 0.5) * dy
    return lon, lat


@dataclass(frozen=True)
class _Grid:
    shape: tuple[int, int]
    bounds: Bounds

    @functools.cached_property
    def dx(self) -> float:
        return (self.bounds[2] - self.bounds[0]) / self.shape[1]

    @functools.cached_property
    def dy(self) -> float:
        return (self.bounds[3] - self.bounds[1]) / self.shape[0]

    @functools.cached_property
    def axes(self) -> tuple[np.ndarray, np.ndarray]:
        return grid_centres(self.shape, self.bounds)

    def window(self, lon_min: float, lon_max: float, lat_min: float, lat_max: float) -> tuple[int, int, int, int] | None:
        """Pixel window ``(r0, r1, c0, c1)`` whose cell centres cover the box, or None."""
        west, _, _, north = self.bounds
        ny, nx = self.shape
        c0 = max(0, int(math.floor((lon_min - west) / self.dx - 0.5)))
        c1 = min(nx, int(math.ceil((lon_max - west) / self.dx + 0.5)))
        r0 = max(0, int(math.floor((north - lat_max) / self.dy - 0.5)))
        r1 = min(ny, int(math.ceil((north - lat_min) / self.dy + 0.5)))
        if c0 >= c1 or r0 >= r1:
            return None
        return r0, r1, c0, c1


@functools.lru_cache(maxsize=8)
def _coverage_cached(shape: tuple[int, int], bounds: Bounds) -> np.ndarray:
    grid = _Grid(shape, bounds)
    lon, lat = grid.axes
    cov = np.zeros(shape, dtype=bool)
    r = COVERAGE_RADIUS_KM
    for lat0, lon0 in _RADAR_SITES:
        dlat = r / KM_PER_DEG_LAT
        dlon = r / (KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(min(abs(lat0) + dlat, 89.0))))
        win = grid.window(lon0 - dlon, lon0 + dlon, lat0 - dlat, lat0 + dlat)
        if win is None:
            continue
        r0, r1, c0, c1 = win
        la = lat[r0:r1]
        kx = (KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(la)))[:, None]
        d2 = ((lon[None, c0:c1] - lon0) * kx) ** 2 + (((la - lat0) * KM_PER_DEG_LAT) ** 2)[:, None]
        cov[r0:r1, c0:c1] |= d2 <= r * r
    cov.setflags(write=False)
    return cov


def radar_coverage(shape: tuple[int, int] = DEFAULT_SHAPE, bounds: Bounds = DEFAULT_BOUNDS) -> np.ndarray:
    """Boolean mask (True = covered) of the synthetic radar network on the grid.

    Union of 320 km discs around ~100 approximate WSR-88D locations, so the
    far Pacific/Atlantic, the Gulf south of ~24N, Mexico and Canada north of
    ~50N are uncovered, as in MRMS.  The array is cached and read-only.
    """
    return _coverage_cached((int(shape[0]), int(shape[1])), tuple(float(b) for b in bounds))


# --------------------------------------------------------------------------
# Smooth noise: cubic B-spline interpolation of a random lattice, evaluated
# separably as Wy @ L @ Wx.T on the (rows, cols) of a window.
# --------------------------------------------------------------------------


def _bspline_weights(t: np.ndarray) -> tuple[np.ndarray, ...]:
    t2 = t * t
    t3 = t2 * t
    return (
        (1 - t) ** 3 / 6.0,
        (3 * t3 - 6 * t2 + 4) / 6.0,
        (-3 * t3 + 3 * t2 + 3 * t + 1) / 6.0,
        t3 / 6.0,
    )


def _bspline_matrix(u: np.ndarray, n: int) -> np.ndarray:
    """Dense (len(u), n) interpolation matrix for lattice coordinates ``u``."""
    u = np.clip(u, 1.0, n - 3.0 - 1e-6)
    i0 = np.floor(u).astype(np.int64)
    t = u - i0
    w = _bspline_weights(t)
    m = np.zeros((u.size, n), dtype=np.float32)
    rows = np.arange(u.size)
    for k in range(4):
        m[rows, i0 - 1 + k] = w[k]
    return m


# Normalisation so that B-spline-smoothed unit-variance lattices have ~unit std.
_T = np.linspace(0.0, 1.0, 1001)
_BSPLINE_NORM = float(1.0 / np.mean(sum(wk**2 for wk in _bspline_weights(_T))))
del _T


@dataclass
class _NoiseLattice:
    values: np.ndarray  # (n, n) float32, N(0,1)
    spacing_km: float
    half_extent_km: float

    def sample(self, e_km: np.ndarray, n_km: np.ndarray) -> np.ndarray:
        n = self.values.shape[0]
        wx = _bspline_matrix((e_km + self.half_extent_km) / self.spacing_km + 2.0, n)
        wy = _bspline_matrix((n_km + self.half_extent_km) / self.spacing_km + 2.0, n)
        return (wy @ self.values @ wx.T) * np.float32(_BSPLINE_NORM)


def _lattice(rng: np.random.Generator, half_extent_km: float, spacing_km: float) -> _NoiseLattice:
    n = int(math.ceil(2 * half_extent_km / spacing_km)) + 6
    return _NoiseLattice(rng.standard_normal((n, n)).astype(np.float32), spacing_km, half_extent_km)


# --------------------------------------------------------------------------
# Storm model
# --------------------------------------------------------------------------


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


@dataclass
class _Blob:
    """One anisotropic Gaussian (in linear Z) echo: dBZ falls off quadratically.

    Positions are km in the system's (along-motion, cross-motion) frame.  ``ra``
    and ``rc`` are the radii (km) where the blob reaches the echo threshold at
    full intensity.
    """

    a0: float
    c0: float
    da: float  # drift relative to the system, km/s
    dc: float
    ra: float
    rc: float
    angle: float  # orientation of the ``ra`` axis, radians from the along axis
    peak: float
    t0: float = -math.inf  # birth, seconds after frame 0 (cells only)
    life: float = math.inf
    min_scale: float = 0.7

    def envelope(self, t: float) -> float:
        if not math.isfinite(self.life):
            return 1.0
        x = (t - self.t0) / self.life
        if x <= 0.0 or x >= 1.0:
            return 0.0
        # quick growth, slower decay
        return math.sin(math.pi * x ** 0.8) ** 0.7


_SECONDS_PER_SLOT = 1800.0
_NOISE_MARGIN_DB = 13.0
_NOISE_CLIP_DB = 11.0


@dataclass
class _System:
    index: int
    seed: int
    kind: str
    lon0: float
    lat0: float
    ve: float  # m/s east
    vn: float  # m/s north
    t_birth: float
    life: float
    size_km: float
    params: dict
    shields: list[_Blob]
    noise_coarse: _NoiseLattice
    noise_fine: _NoiseLattice
    cell_slots: dict[int, list[_Blob]] = field(default_factory=dict)

    @property
    def ua(self) -> tuple[float, float]:
        s = math.hypot(self.ve, self.vn)
        return self.ve / s, self.vn / s

    @property
    def kx(self) -> float:
        return KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(self.lat0))

    def centre(self, t: float) -> tuple[float, float]:
        return (
            self.lon0 + self.ve * t / 1000.0 / self.kx,
            self.lat0 + self.vn * t / 1000.0 / KM_PER_DEG_LAT,
        )

    def envelope(self, t: float) -> float:
        x = (t - self.t_birth) / self.life
        if x <= 0.0 or x >= 1.0:
            return 0.0
        return _smoothstep(x / 0.25) * _smoothstep((1.0 - x) / 0.3)

    # -- convective cells, generated lazily per 30-min slot so that frame k
    #    does not depend on how many frames are requested.
    def cells(self, t: float) -> list[_Blob]:
        max_life = 70 * 60.0
        out: list[_Blob] = []
        first = int(math.floor((t - max_life) / _SECONDS_PER_SLOT))
        last = int(math.floor(t / _SECONDS_PER_SLOT))
        for slot in range(first, last + 1):
            if slot not in self.cell_slots:
                self.cell_slots[slot] = self._spawn(slot)
            out.extend(c for c in self.cell_slots[slot] if c.t0 <= t <= c.t0 + c.life)
        for old in [k for k in self.cell_slots if k < first - 1]:  # bounded memory for long runs
            del self.cell_slots[old]
        return out

    def _spawn(self, slot: int) -> list[_Blob]:
        rng = np.random.default_rng([self.seed, self.index, slot + 10_000])
        p = self.params
        mean_life = 40 * 60.0
        n = rng.poisson(p["n_active"] * _SECONDS_PER_SLOT / mean_life)
        cells = []
        for _ in range(n):
            t0 = slot * _SECONDS_PER_SLOT + rng.uniform(0, _SECONDS_PER_SLOT)
            life = rng.uniform(20, 65) * 60.0
            a, c, ra, rc, ang, peak = self._cell_geometry(rng)
            cells.append(
                _Blob(
                    a0=a, c0=c,
                    da=rng.normal(0, 1.5) / 1000.0, dc=rng.normal(0, 1.5) / 1000.0,
                    ra=ra, rc=rc, angle=ang, peak=peak, t0=t0, life=life, min_scale=0.55,
                )
            )
        return cells

    def _cell_geometry(self, rng: np.random.Generator) -> tuple[float, ...]:
        p = self.params
        k = self.kind
        if k == "squall_line":
            half = p["length"] / 2
            c = rng.uniform(-half, half)
            x = 2 * c / p["length"]
            a = p["bow"] * (1 - x * x) + math.tan(p["tilt"]) * c + rng.normal(0, 4)
            return a, c, rng.uniform(8, 16), rng.uniform(12, 26), p["tilt"] + rng.normal(0, 0.15), rng.uniform(46, 63)
        if k == "mcs":
            r = p["radius"]
            return (
                rng.uniform(0.1, 0.85) * r, rng.uniform(-0.7, 0.7) * r,
                rng.uniform(9, 20), rng.uniform(9, 22), rng.uniform(0, math.pi), rng.uniform(44, 62),
            )
        if k == "scattered":
            s = p["size"] / 2
            ra = rng.uniform(10, 22)
            return rng.uniform(-s, s), rng.uniform(-s, s), ra, ra * rng.uniform(0.7, 1.4), rng.uniform(0, math.pi), rng.uniform(38, 63)
        # stratiform with embedded weak convection
        r = p["radius"] * 0.6
        return (
            rng.uniform(-r, r), rng.uniform(-r, r),
            rng.uniform(10, 25), rng.uniform(10, 25), rng.uniform(0, math.pi), rng.uniform(33, 46),
        )


_KINDS = ("squall_line", "mcs", "scattered", "stratiform")
_KIND_P = (0.3, 0.25, 0.25, 0.2)


def _make_system(seed: int, index: int, rng: np.random.Generator, bearing0: float, speed0: float,
                 window_s: float, taken: list[tuple[float, float]], box: Bounds) -> _System:
    kind = _KINDS[int(rng.choice(len(_KINDS), p=_KIND_P))]
    # keep systems apart (>= ~380 km) so that they stay distinguishable
    for _ in range(60):
        lon0 = rng.uniform(box[0], box[2])
        lat0 = rng.uniform(box[1], box[3])
        if all(
            math.hypot((lon0 - lo) * KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat0)), (lat0 - la) * KM_PER_DEG_LAT)
            >= 380.0
            for lo, la in taken
        ):
            break
    taken.append((lon0, lat0))
    bearing = math.radians(bearing0 + rng.normal(0, 10))
    speed = float(np.clip(speed0 * rng.uniform(0.8, 1.2), 10.0, 25.0))
    ve, vn = speed * math.sin(bearing), speed * math.cos(bearing)
    life = rng.uniform(4.0, 9.0) * 3600.0
    # most systems are already going at frame 0; some develop during the window
    if rng.random() < 0.8:
        t_birth = -rng.uniform(0.1, 0.65) * life
    else:
        t_birth = rng.uniform(0.0, 0.5 * window_s)
    shields: list[_Blob] = []
    params: dict = {}
    if kind == "squall_line":
        length = rng.uniform(150, 400)
        tilt = rng.normal(0, 0.25)
        params = dict(length=length, bow=rng.uniform(-15, 40), tilt=tilt, n_active=length / 11)
        # a continuous line of moderate echo joining the cells
        shields.append(_Blob(0.0, 0.0, 0, 0, rng.uniform(10, 18), length / 2, tilt, rng.uniform(33, 40)))
        # trailing stratiform region behind the line
        for _ in range(int(rng.integers(3, 6))):
            shields.append(_Blob(
                -rng.uniform(35, 90), rng.uniform(-0.35, 0.35) * length, 0, 0,
                rng.uniform(40, 85), rng.uniform(0.25, 0.45) * length, tilt + rng.normal(0, 0.2),
                rng.uniform(27, 35),
            ))
        size = length / 2 + 120
    elif kind == "mcs":
        radius = rng.uniform(80, 200)
        params = dict(radius=radius, n_active=rng.uniform(12, 22))
        for _ in range(int(rng.integers(2, 5))):
            shields.append(_Blob(
                rng.uniform(-0.3, 0.3) * radius, rng.uniform(-0.3, 0.3) * radius, 0, 0,
                rng.uniform(0.5, 1.0) * radius, rng.uniform(0.5, 1.0) * radius, rng.uniform(0, math.pi),
                rng.uniform(28, 36),
            ))
        size = radius * 1.3 + 60
    elif kind == "scattered":
        sz = rng.uniform(150, 350)
        params = dict(size=sz, n_active=rng.uniform(10, 25))
        size = sz * 0.75 + 60
    else:
        radius = rng.uniform(150, 380)
        params = dict(radius=radius, n_active=rng.uniform(4, 10))
        for _ in range(int(rng.integers(3, 7))):
            r = rng.uniform(0.4, 0.8) * radius
            shields.append(_Blob(
                rng.uniform(-0.4, 0.4) * radius, rng.uniform(-0.4, 0.4) * radius, 0, 0,
                r, r / rng.uniform(1.5, 3.0), rng.uniform(0, math.pi), rng.uniform(22, 33),
            ))
        size = radius * 1.3 + 60
    return _System(
        index=index, seed=seed, kind=kind, lon0=lon0, lat0=lat0, ve=ve, vn=vn,
        t_birth=t_birth, life=life, size_km=size, params=params, shields=shields,
        noise_coarse=_lattice(rng, size + 40, 30.0),
        noise_fine=_lattice(rng, size + 40, 7.0),
    )


def _render_system(frame: np.ndarray, grid: _Grid, cov: np.ndarray, sysm: _System, t: float) -> None:
    env_sys = sysm.envelope(t)
    if env_sys <= 0.02:
        return
    ua_e, ua_n = sysm.ua
    base_angle = math.atan2(ua_n, ua_e)  # angle of along axis from east, CCW
    lon_c, lat_c = sysm.centre(t)
    kx = sysm.kx
    edge = ECHO_THRESHOLD_DBZ

    # Active blobs in absolute (east, north) km relative to system centre.
    items = []
    for b, is_cell in [(s, False) for s in sysm.shields] + [(c, True) for c in sysm.cells(t)]:
        env = env_sys * b.envelope(t)
        amp = (b.peak - edge) * (env if is_cell else env ** 0.7)
        if amp < 1.0:
            continue
        scale = b.min_scale + (1 - b.min_scale) * env
        a = b.a0 + b.da * t if is_cell else b.a0
        c = b.c0 + b.dc * t if is_cell else b.c0
        e = a * ua_e - c * ua_n
        n = a * ua_n + c * ua_e
        ang = base_angle + b.angle
        ra, rc = b.ra * scale, b.rc * scale
        rwin = math.sqrt(1.0 + _NOISE_MARGIN_DB / amp)
        ca, sa = math.cos(ang), math.sin(ang)
        he = math.hypot(ra * ca, rc * sa) * rwin
        hn = math.hypot(ra * sa, rc * ca) * rwin
        items.append((e, n, ca, sa, ra, rc, amp, he, hn))
    if not items:
        return
    e_min = min(i[0] - i[7] for i in items)
    e_max = max(i[0] + i[7] for i in items)
    n_min = min(i[1] - i[8] for i in items)
    n_max = max(i[1] + i[8] for i in items)
    win = grid.window(lon_c + e_min / kx, lon_c + e_max / kx, lat_c + n_min / KM_PER_DEG_LAT, lat_c + n_max / KM_PER_DEG_LAT)
    if win is None:
        return
    r0, r1, c0, c1 = win
    lon, lat = grid.axes
    ekm = ((lon[c0:c1] - lon_c) * kx).astype(np.float32)
    nkm = ((lat[r0:r1] - lat_c) * KM_PER_DEG_LAT).astype(np.float32)
    local = np.full((r1 - r0, c1 - c0), -60.0, dtype=np.float32)

    for e, n, ca, sa, ra, rc, amp, he, hn in items:
        # sub-window in local coordinates (ekm ascending, nkm descending)
        j0 = int(np.searchsorted(ekm, e - he, side="left"))
        j1 = int(np.searchsorted(ekm, e + he, side="right"))
        i0 = int(np.searchsorted(-nkm, -(n + hn), side="left"))
        i1 = int(np.searchsorted(-nkm, -(n - hn), side="right"))
        if j0 >= j1 or i0 >= i1:
            continue
        de = (ekm[j0:j1] - np.float32(e))[None, :]
        dn = (nkm[i0:i1] - np.float32(n))[:, None]
        p = (de * np.float32(ca) + dn * np.float32(sa)) * np.float32(1.0 / ra)
        q = (dn * np.float32(ca) - de * np.float32(sa)) * np.float32(1.0 / rc)
        val = np.float32(edge + amp) - np.float32(amp) * (p * p + q * q)
        sub = local[i0:i1, j0:j1]
        np.maximum(sub, val, out=sub)

    # Texture that moves with the system: ragged edges and embedded structure.
    noise = 4.0 * sysm.noise_coarse.sample(ekm, nkm) + 2.5 * sysm.noise_fine.sample(ekm, nkm)
    np.clip(noise, -_NOISE_CLIP_DB, _NOISE_CLIP_DB, out=noise)
    local += noise
    echo = local >= edge
    np.minimum(local, np.float32(MAX_DBZ), out=local)
    q = np.round(local * 2.0) * np.float32(0.5)
    out = np.where(echo, q, np.float32(NO_ECHO))
    out = np.where(cov[r0:r1, c0:c1], out, np.float32(NO_COVERAGE))
    dst = frame[r0:r1, c0:c1]
    np.maximum(dst, out, out=dst)


_CONUS_BOX: Bounds = (-117.0, 28.0, -76.0, 46.5)


def _placement_box(bounds: Bounds) -> Bounds:
    west, south, east, north = bounds
    mx, my = (east - west) * 0.15, (north - south) * 0.15
    inner = (west + mx, south + my, east - mx, north - my)
    box = (max(inner[0], _CONUS_BOX[0]), max(inner[1], _CONUS_BOX[1]),
           min(inner[2], _CONUS_BOX[2]), min(inner[3], _CONUS_BOX[3]))
    if box[2] - box[0] >= 1.0 and box[3] - box[1] >= 1.0:
        return box
    return inner


def _network_reaches(bounds: Bounds) -> bool:
    west, south, east, north = bounds
    dlat = COVERAGE_RADIUS_KM / KM_PER_DEG_LAT
    dlon = COVERAGE_RADIUS_KM / (KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(60.0)))
    lat, lon = _RADAR_SITES[:, 0], _RADAR_SITES[:, 1]
    return bool(np.any((lon >= west - dlon) & (lon <= east + dlon) & (lat >= south - dlat) & (lat <= north + dlat)))


def radar_sequence(
    start: datetime,
    steps: int = 25,
    step: timedelta = timedelta(minutes=5),
    shape: tuple[int, int] = DEFAULT_SHAPE,
    bounds: Bounds = DEFAULT_BOUNDS,
    seed: int = 0,
    *,
    coverage: bool | None = None,
) -> Iterator[tuple[datetime, np.ndarray]]:
    """Yield ``(valid_time, dbz)`` frames of SYNTHETIC composite reflectivity.

    ``dbz`` is a new ``float32`` array of ``shape`` on the regular lat/lon grid
    with cell edges ``bounds`` = (west, south, east, north); row 0 is the
    northern edge (like MRMS / a north-up GeoTIFF).  Values:

    * ``-999.0`` (:data:`NO_COVERAGE`): outside the synthetic radar network
      (far offshore, Mexico, Canada, the domain corners);
    * ``-99.0`` (:data:`NO_ECHO`): covered but no echo (most of the domain);
    * ``5 .. 67`` dBZ in 0.5 dBZ steps: echoes.  Stratiform shields are mostly
      15-35 dBZ, convective cores exceed 50 dBZ, the strongest reach ~65.

    8-15 storm systems (squall lines with trailing stratiform, MCS clusters,
    scattered cells, stratiform shields) are placed over the CONUS.  They
    share a synoptic motion of 10-25 m/s toward the east/north-east with
    per-system and per-cell variation; systems grow and decay over hours and
    their convective cells live 20-65 minutes.  Frame ``k`` only depends on
    ``seed``, the storm placement area and ``k * step`` (not on ``steps``,
    ``start`` or ``shape``), so sequences with the same seed are consistent
    with each other, also across resolutions.

    Storms are placed over the central CONUS (117W-76W, 28N-46.5N) clipped to
    the inner 70 % of ``bounds``; for domains that do not overlap it (e.g.
    Europe) over the inner 70 % of ``bounds``.  ``coverage`` True applies the
    synthetic US radar footprint (:func:`radar_coverage`), False covers
    everything (no -999, e.g. for model reflectivity), None (default) applies
    the footprint when the domain is within reach of the network.

    Speed: a 3500 x 7000 frame takes ~0.05 s once set up (the first frame
    ~0.1-0.7 s: coverage mask and storm systems); add ~0.3 s per frame if the
    caller keeps every frame in memory (fresh pages for each 98 MB array).
    """
    if steps < 0:
        raise ValueError("steps must be >= 0")
    grid = _Grid((int(shape[0]), int(shape[1])), tuple(float(b) for b in bounds))
    if coverage is None:
        coverage = _network_reaches(grid.bounds)
    if coverage:
        cov = radar_coverage(grid.shape, grid.bounds)
    else:
        cov = np.ones(grid.shape, dtype=bool)
    base = np.where(cov, np.float32(NO_ECHO), np.float32(NO_COVERAGE)).astype(np.float32)
    box = _placement_box(grid.bounds)

    rng = np.random.default_rng(seed)
    bearing0 = rng.uniform(50.0, 90.0)  # toward NE .. E
    speed0 = rng.uniform(12.0, 22.0)
    n_sys = int(rng.integers(8, 16))
    # systems are defined against a fixed 2-hour reference window so that they
    # do not depend on ``steps``
    taken: list[tuple[float, float]] = []
    systems = [_make_system(seed, i, rng, bearing0, speed0, 7200.0, taken, box) for i in range(n_sys)]

    step_s = step.total_seconds()
    for k in range(steps):
        t = k * step_s
        frame = base.copy()
        for s in systems:
            _render_system(frame, grid, cov, s, t)
        yield start + k * step, frame


# --------------------------------------------------------------------------
# Temperature and wind
# --------------------------------------------------------------------------


def _lonlat(shape, bounds, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    if lon is not None or lat is not None:
        if lon is None or lat is None:
            raise ValueError("give both lon and lat")
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        if lon.ndim == 1 and lat.ndim == 1:
            lon, lat = np.meshgrid(lon, lat)
        if lon.shape != lat.shape:
            raise ValueError("lon and lat must have the same shape")
        return lon, lat
    lo, la = grid_centres((int(shape[0]), int(shape[1])), bounds)
    return np.meshgrid(lo, la)


def _waves(seed: int, salt: int, n: int, max_m: int, max_n: int) -> list[tuple[float, int, int, float, float]]:
    rng = np.random.default_rng([seed, salt])
    out = []
    for _ in range(n):
        m = int(rng.integers(1, max_m + 1))
        k = int(rng.integers(-max_n, max_n + 1))
        amp = float(rng.uniform(0.5, 1.0)) / math.sqrt(m * m + k * k)
        phase = float(rng.uniform(0, 2 * math.pi))
        speed = float(rng.uniform(-0.5, 2.0))  # phase drift, radians per day (mostly eastward)
        out.append((amp, m, k, phase, speed))
    return out


def _as_utc(valid: datetime) -> datetime:
    return valid if valid.tzinfo is not None else valid.replace(tzinfo=timezone.utc)


def temperature_field(
    valid: datetime,
    shape: tuple[int, int] = DEFAULT_SHAPE,
    bounds: Bounds = DEFAULT_BOUNDS,
    *,
    lon: np.ndarray | None = None,
    lat: np.ndarray | None = None,
    seed: int = 0,
) -> np.ndarray:
    """SYNTHETIC 2 m temperature in Kelvin (float32).

    Evaluated on the lat/lon grid ``shape``/``bounds`` (row 0 = north) or, if
    given, on arbitrary ``lon``/``lat`` arrays (2-D, or 1-D axes; longitudes
    may be -180..180 or 0..360, e.g. a Lambert grid's cell centres).  Warm
    south / cold north (about 300 K at 20N, 270 K at 55N), a seasonal term
    from the day of year, a diurnal cycle (+-6 K, peak 15 h local solar time
    from ``valid``) and smooth planetary-wave "weather" (a few K).
    """
    lon, lat = _lonlat(shape, bounds, lon, lat)
    v = _as_utc(valid)
    lam = np.radians(lon)
    phi = np.radians(lat)
    sin_phi = np.sin(phi)
    doy = v.timetuple().tm_yday
    season = math.cos(2 * math.pi * (doy - 200) / 365.25)  # +1 in mid-July
    t = 273.15 + 27.0 - 45.0 * sin_phi**2 + 9.0 * season * sin_phi
    hours = v.hour + v.minute / 60.0 + v.second / 3600.0
    lst = (hours + lon / 15.0) % 24.0
    t = t + 6.0 * np.cos(2 * math.pi * (lst - 15.0) / 24.0) * np.cos(phi)
    days = (v - datetime(2000, 1, 1, tzinfo=timezone.utc)).total_seconds() / 86400.0
    noise = np.zeros_like(lam)
    for amp, m, k, phase, speed in _waves(seed, 1, 10, 12, 8):
        noise += amp * np.sin(m * lam + k * 2 * phi + phase - speed * days)
    t = t + 6.0 * noise
    return t.astype(np.float32)


def wind_components(
    valid: datetime,
    shape: tuple[int, int] = DEFAULT_SHAPE,
    bounds: Bounds = DEFAULT_BOUNDS,
    *,
    lon: np.ndarray | None = None,
    lat: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """SYNTHETIC 10 m wind ``(u, v)`` in m/s (float32, earth-relative east/north).

    Same grid conventions as :func:`temperature_field`.  Westerlies peaking
    near 45N plus a non-divergent eddy field from a random streamfunction that
    drifts eastward with time; speeds are limited to 0..25 m/s.
    """
    lon, lat = _lonlat(shape, bounds, lon, lat)
    v_ = _as_utc(valid)
    lam = np.radians(lon)
    phi = np.radians(lat)
    days = (v_ - datetime(2000, 1, 1, tzinfo=timezone.utc)).total_seconds() / 86400.0
    u = 7.0 * np.exp(-(((lat - 45.0) / 15.0) ** 2)) - 3.0 * np.exp(-(((np.abs(lat) - 12.0) / 10.0) ** 2))
    u = u + 7.0 * np.exp(-(((lat + 45.0) / 15.0) ** 2))
    v = np.zeros_like(u)
    # psi = sum a sin(m lam + 2k phi + ph); u = -dpsi/dphi, v = dpsi/dlam (scaled)
    for amp, m, k, phase, speed in _waves(seed, 2, 12, 10, 6):
        arg = m * lam + 2 * k * phi + phase - speed * days
        c = np.cos(arg)
        u -= 9.0 * amp * 2 * k * c
        v += 9.0 * amp * m * c
    spd = np.hypot(u, v)
    factor = np.where(spd > 25.0, 25.0 / np.maximum(spd, 1e-6), 1.0)
    return (u * factor).astype(np.float32), (v * factor).astype(np.float32)
