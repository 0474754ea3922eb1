"""Backward semi-Lagrangian advection, traced once per lead on a lattice.

Motion is a field of velocities in Web Mercator metres per second on a coarse
grid. A nowcast pixel at lead ``t`` takes the value found at the end of its
trajectory traced back ``t`` seconds through that field, in sub-steps with the
midpoint rule (pySTEPS' default scheme).

Trajectories are traced from the points of a lattice at the motion grid's own
cells (extended beyond it by as far as a trajectory can reach), and every
pixel's displacement is interpolated bilinearly between the lattice points:
the velocities themselves are bilinear between those cells, so this loses
little, and one lead's lattice serves every tile, point and zoom level. A
pixel's departure point is a function of its position alone, so neighbouring
tiles meet without seams and zoom levels agree.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np
from affine import Affine
from cachetools import LRUCache

# Full sub-steps of 5 minutes keep curved trajectories honest; a lead between
# multiples ends with one shorter sub-step. Lead k * SUBSTEP_S is lead
# (k - 1) * SUBSTEP_S plus one sub-step, which lets a lead start from a cached shorter one.
SUBSTEP_S = 300.0
# The lattice reaches this far beyond the motion grid for every lead up to it
# (leads up to it share one lattice and can be chained); longer leads reach further.
MARGIN_LEAD_S = 7200.0


@dataclass(frozen=True)
class MotionField:
    u: np.ndarray  # eastward velocity, mercator m/s, float32 (rows, cols)
    v: np.ndarray  # northward velocity, mercator m/s
    transform: Affine  # grid (col, row) -> EPSG:3857 metres at cell corners

    def velocity(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bilinear velocity at mercator points; clamped at the grid's edges."""
        inverse = ~self.transform
        col = (inverse.a * x + inverse.b * y + inverse.c - 0.5).astype(np.float32)
        row = (inverse.d * x + inverse.e * y + inverse.f - 0.5).astype(np.float32)
        u = cv2.remap(self.u, col, row, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        v = cv2.remap(self.v, col, row, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return u, v

    def substep(self, x: np.ndarray, y: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """Points ``dt`` seconds further back along their trajectories (midpoint rule)."""
        u, v = self.velocity(x, y)
        # The velocity half a step back along the path.
        um, vm = self.velocity(x - 0.5 * dt * u, y - 0.5 * dt * v)
        return x - dt * um, y - dt * vm

    @cached_property  # reach() asks for it on every nowcast render
    def max_speed(self) -> float:
        return float(np.sqrt(self.u.astype(np.float64) ** 2 + self.v.astype(np.float64) ** 2).max(initial=0.0))

    def reach(self, lead_s: float) -> float:
        """How far back (metres) any trajectory of this lead can go."""
        return self.max_speed * lead_s


@dataclass(frozen=True)
class Departures:
    """Where the trajectories arriving after ``lead_s`` seconds started, on a lattice.

    ``shift``: departure minus arrival (mercator metres, x then y) at lattice
    points ``left + col * spacing``, ``top - row * spacing``. Between points the
    displacement is bilinear; beyond the lattice it is the nearest edge's.
    """

    shift: np.ndarray  # float32 (2, rows, cols)
    left: float
    top: float
    spacing: float
    lead_s: float

    @property
    def nbytes(self) -> int:
        return self.shift.nbytes

    def lattice(self) -> tuple[np.ndarray, np.ndarray]:
        """Mercator x and y of every lattice point."""
        _, rows, cols = self.shift.shape
        return np.meshgrid(self.left + np.arange(cols) * self.spacing, self.top - np.arange(rows) * self.spacing)

    def shift_on_grid(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Departure minus arrival (float32, ``(2, len(ys), len(xs))``) at every ``(xs[i], ys[j])``.

        Bilinear in two separable passes, in plain floating point: each value
        depends on its own point only, never on the other points asked with it.
        (cv2.remap would quantise the weights to 1/32 of a lattice cell, which
        shows as steps of several pixels at street zooms.)
        """
        _, rows, cols = self.shift.shape
        c0, fx = _weights((np.asarray(xs, dtype=np.float64) - self.left) / self.spacing, cols)
        r0, fy = _weights((self.top - np.asarray(ys, dtype=np.float64)) / self.spacing, rows)
        top, left = int(r0.min()), int(c0.min())
        block = self.shift[:, top : int(r0.max()) + 2, left : int(c0.max()) + 2]
        c, r = c0 - left, r0 - top
        across = block[:, :, c] + (block[:, :, c + 1] - block[:, :, c]) * fx
        # The few lattice rows are differenced once; the many pixel rows only pick them.
        below = across[:, 1:] - across[:, :-1]
        return across[:, r] + below[:, r] * fy[:, None]

    def on_grid(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Departure points (float64, ``(len(ys), len(xs))``) of the arrivals at every ``(xs[i], ys[j])``."""
        d = self.shift_on_grid(xs, ys)
        return np.asarray(xs, dtype=np.float64)[None, :] + d[0], np.asarray(ys, dtype=np.float64)[:, None] + d[1]

    def at(self, x: float, y: float) -> tuple[float, float]:
        """The departure point of the trajectory arriving at the mercator point ``(x, y)``."""
        x0, y0 = self.on_grid(np.array([x]), np.array([y]))
        return float(x0[0, 0]), float(y0[0, 0])


def _weights(position: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower lattice index and float32 weight of the upper one, clamped to the lattice."""
    lower = np.clip(np.floor(position), 0, count - 2).astype(np.intp)
    return lower, np.clip(position - lower, 0.0, 1.0).astype(np.float32)


def _lattice_geometry(field: MotionField, lead_s: float) -> tuple[float, float, float, int, int]:
    """``left, top, spacing, rows, cols`` of the lattice for ``lead_s``: the motion cells' centres, extended.

    The margin is the reach of the lead (at least ``MARGIN_LEAD_S``) plus two
    cells, so an arrival beyond the lattice departs from beyond the frame (the
    motion grid covers the frame to within a cell) whatever its displacement.
    """
    spacing = abs(field.transform.a)
    margin = math.ceil(field.reach(max(lead_s, MARGIN_LEAD_S)) / spacing) + 2
    rows, cols = field.u.shape
    left = field.transform.c + (0.5 - margin) * spacing
    top = field.transform.f - (0.5 - margin) * spacing
    return left, top, spacing, rows + 2 * margin, cols + 2 * margin


def trace(field: MotionField, lead_s: float, start: Departures | None = None,
          keep: Callable[[Departures], None] | None = None) -> Departures:
    """The departures of ``lead_s`` (> 0): whole sub-steps, then the remainder if any.

    ``start``: the departures of a shorter lead, a whole number of sub-steps,
    to continue from. The result has the same bits either way: every sub-step
    starts from the lattice's stored float32 displacements. ``keep`` is handed
    each shorter whole-sub-step lead passed on the way.
    """
    left, top, spacing, rows, cols = _lattice_geometry(field, lead_s)
    whole = math.floor(lead_s / SUBSTEP_S + 1e-9)
    rest = lead_s - whole * SUBSTEP_S
    done = _whole_substeps(start.lead_s) if start is not None else None
    if (start is None or done is None or done > whole or start.shift.shape != (2, rows, cols)
            or (start.left, start.top, start.spacing) != (left, top, spacing)):
        start, done = Departures(np.zeros((2, rows, cols), np.float32), left, top, spacing, 0.0), 0
    current = start
    kx, ky = current.lattice()
    for k in range(done + 1, whole + 1):
        current = _advance(field, current, kx, ky, SUBSTEP_S, k * SUBSTEP_S)
        if keep is not None and current.lead_s < lead_s:
            keep(current)
    if rest > 1e-6:
        current = _advance(field, current, kx, ky, rest, lead_s)
    return current


def _advance(field: MotionField, departures: Departures, kx: np.ndarray, ky: np.ndarray, dt: float, lead_s: float) -> Departures:
    x, y = field.substep(kx + departures.shift[0], ky + departures.shift[1], dt)
    return Departures(np.stack([x - kx, y - ky]).astype(np.float32), departures.left, departures.top, departures.spacing, lead_s)


def _whole_substeps(lead_s: float) -> int | None:
    k = round(lead_s / SUBSTEP_S)
    return k if abs(k * SUBSTEP_S - lead_s) < 1e-6 else None


class DepartureCache:
    """Departures by (motion field key, lead), within a memory budget; shared by threads.

    A lead is traced on from the longest shorter whole-sub-step lead at hand,
    and the whole-sub-step leads passed on the way are kept too: an animation
    or a point series through every lead costs one trace of the longest.
    """

    def __init__(self, max_bytes: int) -> None:
        self._entries: LRUCache[tuple[Hashable, float], Departures] = LRUCache(maxsize=max_bytes, getsizeof=_nbytes)
        self._lock = threading.Lock()
        # One field's leads are traced one at a time (a second request for the
        # same lead waits and finds it); different fields trace in parallel.
        self._tracing = [threading.Lock() for _ in range(8)]

    def get(self, key: Hashable, field: MotionField, lead_s: float) -> Departures:
        found = self._get(key, lead_s)
        if found is not None:
            return found
        with self._tracing[hash(key) % len(self._tracing)]:
            found = self._get(key, lead_s)
            if found is not None:
                return found
            start = None
            for k in range(math.floor(lead_s / SUBSTEP_S + 1e-9), 0, -1):
                start = self._get(key, k * SUBSTEP_S)
                if start is not None:
                    break
            departures = trace(field, lead_s, start, keep=lambda d: self._put(key, d))
            self._put(key, departures)
            return departures

    def _get(self, key: Hashable, lead_s: float) -> Departures | None:
        with self._lock:
            return self._entries.get((key, lead_s))

    def _put(self, key: Hashable, departures: Departures) -> None:
        if departures.nbytes <= self._entries.maxsize:
            with self._lock:
                self._entries[(key, departures.lead_s)] = departures


def _nbytes(departures: Departures) -> int:
    return departures.nbytes
