#!/usr/bin/env python
"""Skill and cost of wxtiles' nowcast motion estimation (a benchmark run by hand, not a test).

    .venv/bin/python benchmarks/nowcast_skill.py                 # the default run, ~15 minutes on 2 cores
    .venv/bin/python benchmarks/nowcast_skill.py --no-synthetic  # the real MRMS sequence only
    .venv/bin/python benchmarks/nowcast_skill.py --no-real --quick   # synthetic, fewer initialisations
    .venv/bin/python benchmarks/nowcast_skill.py --no-synthetic --sequence radar/*.h5 --layer precip-rate

First table: a real radar sequence scored in tile space as users receive it:
ingested with ``wxtiles ingest``, then the server's own nowcast ``.npy`` tiles
against the observed tiles, beside pySTEPS on mosaics of the same observed
tiles and persistence (``benchmarks/radar_skill.py`` says how). By default the
MRMS ``PrecipRate`` sequence of ``../shared/data/mrms-20190610`` (2-minute
frames, z7 over the central US); ``--sequence FILE ... --layer LAYER`` scores
any other files ingest reads for a nowcast layer (any network, format and
cadence; region ``--bbox`` or the files' coverage, initialisations
``--real-inits`` or spread over the sequence, thresholds the layer's).
Needs pySTEPS for its column: ``.venv/bin/pip install -e '.[bench]'``.

Second table: synthetic sequences scored on the whole grid (below); motion
methods and their keyword arguments can be compared there.

On the same sequences, in one process, it runs:

* **our nowcast** for each motion method of ``renderers.nowcast.motion``
  (default method first; ``--methods dis farneback:winsize=21`` picks
  methods and keyword arguments), extrapolated by the whole-grid backward
  semi-Lagrangian scheme below (the production scheme of
  ``renderers/nowcast/advection.py``, on the whole grid in pixels);
* **Eulerian persistence** (the last frame, unchanged);
* **pySTEPS**: ``pysteps.motion.get_method("LK")`` on dBR (rain rate from
  Marshall-Palmer Z=200R^1.6, ``dB_transform(threshold=0.1, zerovalue=-15)``,
  the last 3 frames, as pysteps' example) and
  ``pysteps.nowcasts.get_method("extrapolation")``, back to dBZ.

Scores per lead time (5-min steps 5..120 min): CSI at 20, 30, 40 dBZ and at
1, 5, 10 mm/h (Marshall-Palmer), MAE in mm/h (no echo = 0 mm/h).  Every
nowcast is scored on the pixels valid in the observation and in *all*
forecasts of that initialisation (so pixels that any method advects in from
outside the grid or from no coverage are left out for all methods alike).
Scores are computed per nowcast and then **averaged over the
initialisation times** of a sequence (rainymotion's aggregation); a CSI
with no event in forecast or observation is left out of the mean.

Sequences: synthetic ones with known motion (uniform translation with a
no-coverage corner, solid-body rotation, shear, and translation with cells
that grow and decay) and the SYNTHETIC storms of
``ingest.demo.synthetic.radar_sequence`` over the CONUS.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import scipy.ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import radar_skill  # noqa: E402
from ingest.demo.synthetic import radar_sequence  # noqa: E402
from renderers.nowcast import motion  # noqa: E402

DBZ_THRESHOLDS = (20.0, 30.0, 40.0)
RAIN_THRESHOLDS = (1.0, 5.0, 10.0)  # mm/h
MP_A, MP_B = 200.0, 1.6


# --------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------


def dbz_to_rain(dbz: np.ndarray) -> np.ndarray:
    """Marshall-Palmer rain rate (mm/h); no echo (-inf, < 0 dBZ) -> 0, NaN stays NaN."""
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.power(np.power(10.0, dbz / 10.0, dtype=np.float32) / np.float32(MP_A), np.float32(1.0 / MP_B))
        r[dbz < 0] = 0.0
    return r


def rain_to_dbz(r: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (10.0 * np.log10(MP_A * np.power(r, MP_B))).astype(np.float32)


# --------------------------------------------------------------------------
# Whole-grid backward semi-Lagrangian extrapolation ("our nowcast")
# --------------------------------------------------------------------------


def extrapolate(frame: np.ndarray, velocity: np.ndarray, n_leads: int, substeps: int = 1) -> list[np.ndarray]:
    """Backward semi-Lagrangian extrapolation of a dBZ frame, one output per frame interval.

    The same scheme as the production per-tile advection: departure points
    are integrated backwards with the midpoint rule (pysteps' predictor: the
    velocity at the previous end point), ``substeps`` sub-steps per frame
    interval, the velocity sampled bilinearly with edge clamping; the field
    is sampled bilinearly at the departure point (the echo / no-echo mask
    too, so echo edges stay sharp); departure points outside the grid or in
    no coverage give NaN, never zero.  Uses ``cv2.remap`` (bilinear with
    1/32-pixel weights).
    """
    h, w = frame.shape
    xx, yy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    vx = np.ascontiguousarray(velocity[0], dtype=np.float32)
    vy = np.ascontiguousarray(velocity[1], dtype=np.float32)
    echo = np.isfinite(frame) & (frame >= 0)
    src = np.where(echo, frame, np.float32(0.0)).astype(np.float32)
    src[np.isnan(frame)] = np.nan
    echo_f = echo.astype(np.float32)
    dx = np.zeros((h, w), np.float32)
    dy = np.zeros((h, w), np.float32)
    step = np.float32(1.0 / substeps)
    ix, iy = vx * step, vy * step  # predictor: velocity at the arrival point
    out = []

    def sample_v(mx: np.ndarray, my: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = cv2.remap(vx, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        b = cv2.remap(vy, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return a * step, b * step

    for _ in range(n_leads):
        for _ in range(substeps):
            mx, my = sample_v(xx + dx - ix / 2, yy + dy - iy / 2)
            dx -= mx
            dy -= my
            ix, iy = sample_v(xx + dx, yy + dy)
        mx, my = xx + dx, yy + dy
        f = cv2.remap(src, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))
        e = cv2.remap(echo_f, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        f[(e < 0.5) & ~np.isnan(f)] = -np.inf
        out.append(f)
    return out


# --------------------------------------------------------------------------
# Sequences
# --------------------------------------------------------------------------


@dataclass
class Seq:
    name: str
    frames: list[np.ndarray]
    step_min: float
    note: str = ""
    truth: Callable[[int, int], np.ndarray] | None = None  # (H, W) -> (2, H, W) px/step
    inits: list[int] = field(default_factory=list)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return n / n.std()


def _finish_dbz(d: np.ndarray) -> np.ndarray:
    d = np.minimum(d, 65.0)
    d = np.round(d * 2.0) / 2.0  # 0.5 dBZ like MRMS
    return np.where(d >= 5.0, d, -np.inf).astype(np.float32)


class _Canvas:
    """A rain-like dBZ texture on a canvas larger than the domain, sampled at back-trajectory origins."""

    def __init__(self, shape: tuple[int, int], margin: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.m = margin
        cs = (shape[0] + 2 * margin, shape[1] + 2 * margin)
        # large rain areas + embedded structure + small-scale texture
        base = 6.0 + 12.0 * _smooth_noise(rng, cs, 20) + 7.0 * _smooth_noise(rng, cs, 6) + 3.0 * _smooth_noise(rng, cs, 2)
        # convective cores: bumps of +15..30 dBZ inside rain areas
        yy, xx = np.mgrid[0 : cs[0], 0 : cs[1]]
        n = int(cs[0] * cs[1] / 4000)
        cy, cx = rng.uniform(0, cs[0], n), rng.uniform(0, cs[1], n)
        for y0, x0, r, a in zip(cy, cx, rng.uniform(4, 12, n), rng.uniform(15, 30, n)):
            if base[int(y0), int(x0)] < 12:
                continue
            sl = (slice(max(0, int(y0 - 3 * r)), int(y0 + 3 * r) + 1), slice(max(0, int(x0 - 3 * r)), int(x0 + 3 * r) + 1))
            base[sl] += a * np.exp(-((yy[sl] - y0) ** 2 + (xx[sl] - x0) ** 2) / (2 * r * r))
        self.base = base.astype(np.float32)
        self.phase = (2 * np.pi * (0.5 + 0.5 * np.tanh(_smooth_noise(rng, cs, 15)))).astype(np.float32)

    def sample(self, a: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        return ndi.map_coordinates(a, [ys + self.m, xs + self.m], order=1, mode="nearest").astype(np.float32)


def synthetic_sequences(n_frames: int, shape: tuple[int, int] = (500, 500), seed: int = 7) -> list[Seq]:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    seqs = []

    # 1. uniform translation, with a no-coverage corner
    u, v = 3.7, -1.6
    can = _Canvas(shape, int(max(abs(u), abs(v)) * n_frames) + 20, seed)
    nocov = (xx - 0) ** 2 + (yy - h) ** 2 < (0.35 * h) ** 2
    frames = []
    for t in range(n_frames):
        f = _finish_dbz(can.sample(can.base, yy - v * t, xx - u * t))
        f[nocov] = np.nan
        frames.append(f)
    seqs.append(Seq("translation", frames, 5.0, f"uniform ({u}, {v}) px/step, no coverage in the SW corner",
                    lambda H, W, u=u, v=v: np.stack([np.full((H, W), u, np.float32), np.full((H, W), v, np.float32)])))

    # 2. solid-body rotation about the centre (clockwise on a north-up map)
    om = 0.015  # rad/step, ~3.7 px/step at the domain edge
    can = _Canvas(shape, int(0.5 * math.hypot(h, w) - 0.5 * min(h, w)) + 20, seed + 1)
    frames = []
    for t in range(n_frames):
        c, s = math.cos(om * t), math.sin(om * t)
        x0 = cx + c * (xx - cx) + s * (yy - cy)
        y0 = cy - s * (xx - cx) + c * (yy - cy)
        frames.append(_finish_dbz(can.sample(can.base, y0, x0)))
    seqs.append(Seq("rotation", frames, 5.0, f"solid body, {om} rad/step about the centre",
                    lambda H, W: np.stack([-om * (np.mgrid[0:H, 0:W][0] - (H - 1) / 2.0),
                                           om * (np.mgrid[0:H, 0:W][1] - (W - 1) / 2.0)]).astype(np.float32)))

    # 3. shear: u = u0 + s (row - cy), v = v0
    u0, sh, v0 = 3.0, 4.0 / (h / 2), 1.0
    can = _Canvas(shape, int((abs(u0) + abs(sh) * h) * n_frames) + 20, seed + 2)
    frames = []
    for t in range(n_frames):
        y0 = yy - v0 * t
        x0 = xx - u0 * t - sh * ((y0 - cy) * t + v0 * t * t / 2.0)
        frames.append(_finish_dbz(can.sample(can.base, y0, x0)))
    seqs.append(Seq("shear", frames, 5.0, f"u = {u0} + {sh:.3f} (row - centre) (-1..7 px/step), v = {v0}",
                    lambda H, W: np.stack([u0 + sh * (np.mgrid[0:H, 0:W][0] - (H - 1) / 2.0),
                                           np.full((H, W), v0)]).astype(np.float32)))

    # 4. translation with growth and decay: areas that intensify and weaken
    # (period 90 min) and convective cells living 25-60 min
    u, v = 3.0, 1.0
    can = _Canvas(shape, int(max(abs(u), abs(v)) * n_frames) + 40, seed + 3)
    rng = np.random.default_rng(seed + 30)
    n_cells = int(h * w / 2500 * n_frames / 8)
    cells = np.column_stack([
        rng.uniform(-can.m, h + can.m, n_cells), rng.uniform(-can.m, w + can.m, n_cells),  # canvas-frame position
        rng.uniform(-8, n_frames, n_cells), rng.uniform(5, 12, n_cells),  # birth step, life (steps)
        rng.uniform(5, 12, n_cells), rng.uniform(30, 55, n_cells),  # radius px, peak dBZ
    ])
    frames = []
    period = 18.0
    for t in range(n_frames):
        ys, xs = yy - v * t, xx - u * t
        d = can.sample(can.base, ys, xs) - 6.0 + 9.0 * np.sin(2 * np.pi * t / period + can.sample(can.phase, ys, xs))
        for y0, x0, tb, life, r, a in cells:
            x = (t - tb) / life
            if not 0.0 < x < 1.0:
                continue
            amp = a * math.sin(math.pi * x)
            py, px = y0 + v * t, x0 + u * t
            r0, r1 = max(0, int(py - 3 * r)), min(h, int(py + 3 * r) + 1)
            c0, c1 = max(0, int(px - 3 * r)), min(w, int(px + 3 * r) + 1)
            if r0 >= r1 or c0 >= c1:
                continue
            bump = amp * np.exp(-((yy[r0:r1, c0:c1] - py) ** 2 + (xx[r0:r1, c0:c1] - px) ** 2) / (2 * r * r))
            d[r0:r1, c0:c1] = np.maximum(d[r0:r1, c0:c1], bump)
        frames.append(_finish_dbz(d))
    seqs.append(Seq("growth-decay", frames, 5.0, f"uniform ({u}, {v}) px/step; areas pulse (90 min), cells live 25-60 min",
                    lambda H, W, u=u, v=v: np.stack([np.full((H, W), u, np.float32), np.full((H, W), v, np.float32)])))
    return seqs


def mrms_codes(d: np.ndarray) -> np.ndarray:
    d = d.astype(np.float32, copy=True)
    d[d <= -998.0] = np.nan
    d[(d <= -98.0) & ~np.isnan(d)] = -np.inf
    return d


def conus_sequence(n_frames: int, shape: tuple[int, int], seed: int) -> Seq:
    start = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)
    frames = [mrms_codes(d) for _, d in radar_sequence(start, steps=n_frames, shape=shape, seed=seed)]
    return Seq(f"synthetic-conus-s{seed}", frames, 5.0,
               f"ingest.demo.synthetic.radar_sequence, {shape[0]}x{shape[1]} over CONUS (~{7000 / shape[1] * 1.0:.0f} km px), seed {seed}")


# --------------------------------------------------------------------------
# Forecasters
# --------------------------------------------------------------------------


@dataclass
class Forecaster:
    label: str
    # (past frames, leads) -> (forecasts, motion field or None, (motion s, extrapolation s, same in CPU s))
    run: Callable[[list[np.ndarray], int], tuple[list[np.ndarray], np.ndarray | None, tuple[float, ...]]]
    motion_s: list[float] = field(default_factory=list)
    extrap_s: list[float] = field(default_factory=list)
    motion_cpu: list[float] = field(default_factory=list)
    extrap_cpu: list[float] = field(default_factory=list)


def ours(name: str, kwargs: dict) -> Forecaster:
    fn = motion.get_method(name)

    def run(past, n_leads):
        t0, c0 = time.perf_counter(), time.process_time()
        V = fn(past, **kwargs)
        t1, c1 = time.perf_counter(), time.process_time()
        fc = extrapolate(past[-1], V, n_leads)
        return fc, V, (t1 - t0, time.perf_counter() - t1, c1 - c0, time.process_time() - c1)

    label = "our:" + name + ("(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")" if kwargs else "")
    return Forecaster(label, run)


def persistence() -> Forecaster:
    def run(past, n_leads):
        return [past[-1]] * n_leads, None, (0.0, 0.0, 0.0, 0.0)

    return Forecaster("persistence", run)


def pysteps_lk() -> Forecaster | None:
    try:
        from pysteps import motion as ps_motion
        from pysteps import nowcasts as ps_nowcasts
        from pysteps.utils import transformation
    except Exception as e:  # noqa: BLE001
        print(f"# pySTEPS not available ({type(e).__name__}: {e}); its column is skipped")
        return None
    lk = ps_motion.get_method("LK")
    extrap = ps_nowcasts.get_method("extrapolation")

    def run(past, n_leads):
        r = np.stack([dbz_to_rain(f) for f in past[-3:]]).astype(np.float64)
        dbr, _ = transformation.dB_transform(r, threshold=0.1, zerovalue=-15.0)
        t0, c0 = time.perf_counter(), time.process_time()
        V = lk(dbr)
        t1, c1 = time.perf_counter(), time.process_time()
        fc = extrap(dbr[-1], V, n_leads)
        t2, c2 = time.perf_counter(), time.process_time()
        out = []
        for f in fc:
            with np.errstate(invalid="ignore"):
                rr = np.where(f >= -10.0, np.power(10.0, f / 10.0), 0.0)
            d = np.where(rr > 0, rain_to_dbz(rr), -np.inf).astype(np.float32)
            d[np.isnan(f)] = np.nan
            out.append(d)
        return out, V.astype(np.float32), (t1 - t0, t2 - t1, c1 - c0, c2 - c1)

    return Forecaster("pysteps:LK", run)


# --------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------

SCORES = [f"CSI>={t:g}dBZ" for t in DBZ_THRESHOLDS] + [f"CSI>={t:g}mm/h" for t in RAIN_THRESHOLDS] + ["MAE mm/h"]


def _csi(f: np.ndarray, o: np.ndarray) -> float:
    hits = np.count_nonzero(f & o)
    den = np.count_nonzero(f | o)
    return hits / den if den else float("nan")


def score(fc: np.ndarray, obs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    f = np.where(valid, fc, -np.inf)
    o = np.where(valid, obs, -np.inf)
    with np.errstate(invalid="ignore"):
        out = [_csi(f >= t, o >= t) for t in DBZ_THRESHOLDS]
        rf, ro = dbz_to_rain(f), dbz_to_rain(o)
        out += [_csi(rf >= t, ro >= t) for t in RAIN_THRESHOLDS]
    n = np.count_nonzero(valid)
    out.append(float(np.abs(rf[valid] - ro[valid]).mean()) if n else float("nan"))
    return np.array(out)


@dataclass
class Result:
    seq: Seq
    labels: list[str]
    scores: np.ndarray  # (n_methods, n_inits, n_leads, n_scores)
    motion_err: dict[str, list[float]]
    timing: dict[str, tuple[float, float]]


def evaluate(seq: Seq, forecasters: list[Forecaster], n_past: int, n_leads: int, n_inits: int, stride: int) -> Result:
    nf = len(seq.frames)
    last_init = nf - 1 - n_leads
    first_init = n_past - 1
    if last_init < first_init:
        raise SystemExit(f"{seq.name}: {nf} frames are too few for {n_past} past frames and {n_leads} leads")
    inits = list(range(last_init, first_init - 1, -stride))[:n_inits][::-1]
    seq.inits = inits
    sc = np.full((len(forecasters), len(inits), n_leads, len(SCORES)), np.nan)
    merr: dict[str, list[float]] = {}
    for fc_ in forecasters:
        for lst in (fc_.motion_s, fc_.extrap_s, fc_.motion_cpu, fc_.extrap_cpu):
            lst.clear()
    for ii, i0 in enumerate(inits):
        past = seq.frames[i0 - n_past + 1 : i0 + 1]
        outs = []
        for fc_ in forecasters:
            fc, V, (tm, te, cm, ce) = fc_.run(past, n_leads)
            fc_.motion_s.append(tm)
            fc_.extrap_s.append(te)
            fc_.motion_cpu.append(cm)
            fc_.extrap_cpu.append(ce)
            outs.append(fc)
            if V is not None and seq.truth is not None:
                tv = seq.truth(*past[-1].shape)
                echo = np.isfinite(past[-1])
                err = np.sqrt(((V[0] - tv[0]) ** 2 + (V[1] - tv[1]) ** 2)[echo].mean())
                merr.setdefault(fc_.label, []).append(float(err / np.sqrt((tv[0] ** 2 + tv[1] ** 2)[echo].mean())))
        for lead in range(n_leads):
            obs = seq.frames[i0 + lead + 1]
            valid = ~np.isnan(obs)
            for fc in outs:
                valid &= ~np.isnan(fc[lead])
            for mi, fc in enumerate(outs):
                sc[mi, ii, lead] = score(fc[lead], obs, valid)
    timing = {f.label: (float(np.mean(f.motion_s)), float(np.mean(f.extrap_s)), float(np.mean(f.motion_cpu)),
                        float(np.mean(f.extrap_cpu))) for f in forecasters}
    return Result(seq, [f.label for f in forecasters], sc, merr, timing)


# --------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------


def _short(label: str) -> str:
    return label if len(label) <= 18 else label[:17] + "…"


def print_result(res: Result, print_leads: list[int]) -> None:
    seq = res.seq
    h, w = seq.frames[0].shape
    print()
    print("=" * 100)
    print(f"Sequence {seq.name}: {h}x{w} px, {len(seq.frames)} frames of {seq.step_min:g} min; {seq.note}")
    print(f"Initialisations (frame index): {seq.inits}; scores are means of per-nowcast scores over these "
          f"{len(seq.inits)} initialisations")
    mean = np.nanmean(res.scores, axis=1)  # (methods, leads, scores)
    cols = [_short(l) for l in res.labels]
    width = max(11, max(len(c) for c in cols) + 1)
    for si, sname in enumerate(SCORES):
        print(f"\n  {sname} by lead time")
        print("  lead(min)" + "".join(c.rjust(width) for c in cols))
        for lead in print_leads:
            if lead > mean.shape[1]:
                continue
            vals = mean[:, lead - 1, si]
            print(f"  {lead * seq.step_min:9g}" + "".join(f"{v:{width}.3f}" for v in vals))
    print("\n  Time per nowcast (mean over initialisations), seconds of wall clock and of process CPU "
          f"(all threads): motion estimation, extrapolation of {mean.shape[1]} leads")
    for lab in res.labels:
        tm, te, cm, ce = res.timing[lab]
        print(f"    {lab:40s} motion {tm:7.3f} wall {cm:7.3f} cpu   extrapolation {te:7.3f} wall {ce:7.3f} cpu")
    if res.motion_err:
        print("\n  Motion error vs the known field in the echo region of the last input frame "
              "(RMS vector error / RMS true speed)")
        for lab, errs in res.motion_err.items():
            print(f"    {lab:40s} {np.mean(errs) * 100:6.1f} %")


def print_ratios(results: list[Result], ref_leads: list[int]) -> None:
    keys = ["CSI>=20dBZ", "CSI>=30dBZ", "CSI>=40dBZ", "CSI>=1mm/h", "CSI>=5mm/h", "MAE mm/h"]
    print()
    print("=" * 100)
    print("Ratios of the mean scores: method / persistence and method / pySTEPS LK "
          "(CSI: > 1 is better; MAE: < 1 is better)")
    for res in results:
        mean = np.nanmean(res.scores, axis=1)
        lab = res.labels
        ip = lab.index("persistence")
        iq = lab.index("pysteps:LK") if "pysteps:LK" in lab else None
        leads = [l for l in ref_leads if l <= mean.shape[1]]
        lt = "".join(f"{l * res.seq.step_min:g}'".rjust(7) for l in leads)
        print(f"\n  {res.seq.name}")
        print("    " + "score".ljust(12) + "method".ljust(32) + "vs persistence".ljust(7 * len(leads) + 3)
              + ("vs pySTEPS LK" if iq is not None else ""))
        print("    " + " " * 44 + lt + "   " + (lt if iq is not None else ""))
        for k in keys:
            si = SCORES.index(k)
            for mi, name in enumerate(lab):
                if mi == ip:
                    continue
                row = "    " + k.ljust(12) + name[:31].ljust(32)
                for ref in (ip, iq):
                    if ref is None:
                        continue
                    for l in leads:
                        a, b = mean[mi, l - 1, si], mean[ref, l - 1, si]
                        ok = ref != mi and b and np.isfinite(a / b)
                        row += f"{a / b:7.2f}" if ok else f"{'-':>7}"
                    row += "   "
                print(row.rstrip())


def print_summary(results: list[Result], max_lead: int) -> None:
    print()
    print("=" * 100)
    print(f"Summary: mean CSI over the 6 thresholds and leads 1..{max_lead} steps, per sequence and their mean; "
          "MAE (mm/h) at 30 and 60 min and time per nowcast averaged over sequences")
    labels = results[0].labels
    names = [r.seq.name.replace("synthetic-", "") for r in results]
    w = max(9, max(len(n) for n in names) + 1)
    print("    " + "method".ljust(36) + "".join(n.rjust(w) for n in names) + "mean".rjust(8) + "MAE30".rjust(8)
          + "MAE60".rjust(8) + "motion s".rjust(10) + "cpu s".rjust(8) + "extrap s".rjust(10))
    for mi, lab in enumerate(labels):
        csis, m30, m60, tm, cm, te = [], [], [], [], [], []
        for res in results:
            mean = np.nanmean(res.scores, axis=1)
            L = min(max_lead, mean.shape[1])
            csis.append(np.nanmean(mean[mi, :L, :6]))
            m30.append(mean[mi, min(6, mean.shape[1]) - 1, 6])
            m60.append(mean[mi, min(12, mean.shape[1]) - 1, 6])
            tm.append(res.timing[lab][0])
            te.append(res.timing[lab][1])
            cm.append(res.timing[lab][2])
        print(f"    {lab[:35]:36s}" + "".join(f"{c:{w}.4f}" for c in csis) + f"{np.mean(csis):8.4f}{np.mean(m30):8.3f}"
              f"{np.mean(m60):8.3f}{np.mean(tm):10.3f}{np.mean(cm):8.3f}{np.mean(te):10.3f}")


def timing_section(specs: list[tuple[str, dict]], with_pysteps: bool, full: bool, pysteps_full: bool) -> None:
    print()
    print("=" * 100)
    print("Motion-estimation time on SYNTHETIC CONUS frames (ingest.demo.synthetic.radar_sequence), best of 3 runs, "
          f"{cv2.getNumThreads()} OpenCV threads, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
          "(other processes on the machine inflate these)")
    shapes = [(875, 1750), (1750, 3500)] + ([(3500, 7000)] if full else [])
    start = datetime(2026, 11, 27, 18, 0, tzinfo=timezone.utc)
    for shape in shapes:
        frames = [mrms_codes(d) for _, d in radar_sequence(start, steps=3, shape=shape, seed=3)]
        for name, kw in specs:
            fn = motion.get_method(name)
            for n in (2, 3):
                best = cpu = math.inf
                for _ in range(3):
                    t0, c0 = time.perf_counter(), time.process_time()
                    fn(frames[-n:], **kw)
                    best = min(best, time.perf_counter() - t0)
                    cpu = min(cpu, time.process_time() - c0)
                kws = ",".join(f"{k}={v}" for k, v in kw.items())
                label = f"our:{name}" + (f"({kws})" if kws else "")
                print(f"    {shape[1]:>4}x{shape[0]:<4}  {label:44s} {n} frames  {best:7.3f} s wall {cpu:7.3f} s cpu")
        if with_pysteps and (shape[1] <= 1750 or pysteps_full):
            from pysteps import motion as ps_motion
            from pysteps.utils import transformation

            r = np.stack([dbz_to_rain(f) for f in frames]).astype(np.float64)
            dbr, _ = transformation.dB_transform(r, threshold=0.1, zerovalue=-15.0)
            t0, c0 = time.perf_counter(), time.process_time()
            ps_motion.get_method("LK")(dbr)
            print(f"    {shape[1]:>4}x{shape[0]:<4}  {'pysteps:LK (dense IDW on the full grid)':44s} 3 frames  "
                  f"{time.perf_counter() - t0:7.3f} s wall {time.process_time() - c0:7.3f} s cpu")
        if shape == (875, 1750):
            V = motion.estimate_motion(frames[-2:])
            t0, c0 = time.perf_counter(), time.process_time()
            extrapolate(frames[-1], V, 12)
            print(f"    {shape[1]:>4}x{shape[0]:<4}  {'benchmark extrapolation, 12 leads (60 min)':44s}           "
                  f"{time.perf_counter() - t0:7.3f} s wall {time.process_time() - c0:7.3f} s cpu")
        del frames


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def _pysteps_version() -> str:
    from importlib.metadata import version

    return version("pysteps")


def _parse_spec(spec: str) -> tuple[str, dict]:
    name, _, rest = spec.partition(":")
    kw = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        for conv in (int, float):
            try:
                v = conv(v)
                break
            except ValueError:
                continue
        else:
            v = {"None": None, "True": True, "False": False}.get(v, v)
        kw[k] = v
    motion.get_method(name)
    return name, kw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_methods = [motion.DEFAULT_METHOD] + sorted({k for k, f in motion.METHODS.items()
                                                        if f is not motion.METHODS[motion.DEFAULT_METHOD]
                                                        and k in ("dis", "farneback", "lucaskanade")})
    ap.add_argument("--methods", nargs="+", default=default_methods,
                    help="motion methods, NAME[:key=value,...] (default: %(default)s)")
    ap.add_argument("--mrms", type=Path, default=radar_skill.MRMS_DIR,
                    help="real MRMS PrecipRate sequence scored in tile space through ingest and the server (default: %(default)s)")
    ap.add_argument("--no-real", action="store_true", help="skip the real MRMS sequence")
    ap.add_argument("--sequence", nargs="+", type=Path, metavar="FILE",
                    help="score these files instead of the MRMS sequence, in tile space as ingested for --layer")
    ap.add_argument("--layer", help="--sequence: the nowcast layer the files go to (e.g. precip-rate, reflectivity)")
    ap.add_argument("--bbox", help="--sequence: W,S,E,N degrees of the scored region (default: the files' coverage)")
    ap.add_argument("--real-inits", help="--sequence: initialisation times, HH:MM,... (default: up to 4 spread over it)")
    ap.add_argument("--leads", type=int, default=24, help="lead times in frame intervals (default 24 = 120 min)")
    ap.add_argument("--inits", type=int, default=4, help="initialisations per sequence (default 4)")
    ap.add_argument("--init-stride", type=int, default=3, help="frames between initialisations (default 3)")
    ap.add_argument("--past", type=int, default=3, help="input frames per nowcast (default 3)")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic sequences")
    ap.add_argument("--conus-shape", default="700x1400", help="rows x cols of the synthetic CONUS sequence")
    ap.add_argument("--conus-seeds", type=int, nargs="*", default=[0, 5], help="seeds of synthetic CONUS sequences")
    ap.add_argument("--only", nargs="+", metavar="TEXT", help="run only the sequences whose name contains TEXT")
    ap.add_argument("--no-pysteps", action="store_true")
    ap.add_argument("--no-timing", action="store_true", help="skip the grid-size timing section")
    ap.add_argument("--no-full-conus", action="store_true", help="timing: skip the 7000x3500 grid")
    ap.add_argument("--pysteps-timing-large", action="store_true", help="timing: pySTEPS LK at 3500x1750 too (slow)")
    ap.add_argument("--quick", action="store_true", help="2 initialisations, one CONUS seed, no 7000x3500 timing")
    args = ap.parse_args(argv)
    if args.quick:
        args.inits, args.conus_seeds, args.no_full_conus = 2, args.conus_seeds[:1], True

    t_start = time.perf_counter()
    specs = [_parse_spec(s) for s in args.methods]
    forecasters = [ours(n, kw) for n, kw in specs] + [persistence()]
    ps = None if args.no_pysteps else pysteps_lk()
    if ps is not None:
        forecasters.append(ps)
    n_frames = args.past + args.leads + (args.inits - 1) * args.init_stride

    print(f"# wxtiles nowcast skill benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M}Z; numpy {np.__version__}, "
          f"OpenCV {cv2.__version__}" + (f", pysteps {_pysteps_version()}" if ps else ""))
    print(f"# {args.past} input frames per nowcast, {args.leads} leads, up to {args.inits} initialisations "
          f"{args.init_stride} frames apart; CSI/MAE on pixels valid in obs and all forecasts")
    real_sequence = None
    if args.sequence:
        if not args.layer:
            raise SystemExit("--sequence needs --layer (the nowcast layer the files go to)")
        try:
            bbox = tuple(float(v) for v in args.bbox.split(",")) if args.bbox else None
        except ValueError:
            bbox = ()
        if bbox is not None and (len(bbox) != 4 or not (bbox[0] < bbox[2] and bbox[1] < bbox[3])):
            raise SystemExit(f"--bbox {args.bbox}: give W,S,E,N in degrees, west < east and south < north")
        real_sequence = radar_skill.file_sequence(args.sequence, args.layer, bbox,
                                                 args.real_inits.split(",") if args.real_inits else None)
    elif not args.no_real:
        real_sequence = radar_skill.mrms_sequence(args.mrms)
    seqs: list[Seq] = []
    if not args.no_synthetic:
        seqs += synthetic_sequences(n_frames)
        rows, cols = (int(x) for x in args.conus_shape.lower().split("x"))
        seqs += [conus_sequence(n_frames, (rows, cols), s) for s in args.conus_seeds]

    if args.only:
        seqs = [s for s in seqs if any(t in s.name for t in args.only)]
    if real_sequence is not None:
        t0 = time.perf_counter()
        real = radar_skill.run(real_sequence, pysteps_frames=None if args.no_pysteps else 3)
        radar_skill.print_real(real)
        print(f"  ({time.perf_counter() - t0:.1f} s for the real sequence)", flush=True)
    results = []
    for seq in seqs:
        t0 = time.perf_counter()
        res = evaluate(seq, forecasters, args.past, min(args.leads, len(seq.frames) - args.past), args.inits,
                       args.init_stride)
        print_result(res, [l for l in list(range(1, 13)) + [15, 18, 21, 24] if l <= args.leads])
        print(f"  ({time.perf_counter() - t0:.1f} s for this sequence)", flush=True)
        results.append(res)
    ref = [l for l in (6, 12, 24) if l <= args.leads]
    if results:
        print_ratios(results, ref)
        print_summary(results, min(12, args.leads))
    if not args.no_timing:
        timing_section(specs, ps is not None, not args.no_full_conus, args.pysteps_timing_large)
    print(f"\n# total {time.perf_counter() - t_start:.0f} s; load average now {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
