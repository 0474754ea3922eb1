"""Nowcast skill on the real MRMS sequence, in tile space as users receive it.

Used by ``benchmarks/nowcast_skill.py`` (its default run). The 2-minute MRMS
``PrecipRate`` files of ``../shared/data/mrms-20190610`` are ingested with
``wxtiles ingest --layer precip-rate`` into a temporary store, in stages: all
frames up to the first initialisation time, then up to the next, and so on, so
that at each stage the newest frame is the initialisation and ``wxtiles serve``
answers nowcast tiles from it (with the motion ingest estimated for it). The
rest of the sequence is ingested last and the observed tiles are fetched.

Forecasts, all on the z7 tiles over the central US (99 W to 81 W, 30 N to 46 N)
as ``.npy`` (mm/h, NaN = no coverage):

* **wxtiles**: the server's nowcast tiles at each lead;
* **pySTEPS**: Lucas-Kanade on the dB-transformed rain rate of mosaics of the
  observed tiles (``dB_transform(threshold=0.1, zerovalue=-15)``), then the
  ``extrapolation`` nowcast, back to mm/h;
* **persistence**: the observed tiles at the initialisation time.

CSI at 1, 5 and 10 mm/h on the pixels valid in the observation and in every
forecast, per nowcast, then averaged over the initialisation times.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import mercantile
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.servers import wxtiles_serving  # noqa: E402
from tileserver.core.timeutil import format_utc  # noqa: E402

MRMS_DIR = ROOT.parent / "shared" / "data" / "mrms-20190610"
LAYER = "precip-rate"
BBOX = (-99.0, 30.0, -81.0, 46.0)  # west, south, east, north
ZOOM = 7
TILE = 256
THRESHOLDS = (1.0, 5.0, 10.0)  # mm/h
_STAMP = re.compile(r"(\d{8})-(\d{6})\.grib2(\.gz)?$")


@dataclass
class RealResult:
    """CSI per forecaster, initialisation, lead and threshold (NaN: no event, or no data that late)."""

    labels: list[str]
    inits: list[datetime]
    leads_min: list[int]
    csi: np.ndarray  # (forecasters, inits, leads, thresholds)
    note: str
    timing: dict[str, float]

    def mean_csi(self) -> np.ndarray:
        """(forecasters, leads, thresholds): mean over the initialisations that reach each lead."""
        with np.errstate(invalid="ignore"):
            return np.nanmean(self.csi, axis=1)


def mrms_files(folder: Path) -> dict[datetime, Path]:
    """The sequence's files by valid time (from the MRMS file name)."""
    files = {}
    for path in sorted(folder.glob("*.grib2*")):
        m = _STAMP.search(path.name)
        if m:
            files[datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)] = path
    if not files:
        raise SystemExit(f"no MRMS files (…YYYYMMDD-HHMMSS.grib2) in {folder}")
    return files


def ingest(store: str, paths: list[Path]) -> float:
    """``wxtiles ingest --layer precip-rate`` of ``paths`` into ``store``; seconds taken."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tileserver.cli", "ingest", "--layer", LAYER, "--quiet", *map(str, paths)],
        env={**os.environ, "WXTILES_STORE": store}, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"wxtiles ingest failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return time.perf_counter() - began


def region_tiles() -> tuple[list[mercantile.Tile], tuple[int, int, int, int]]:
    tiles = list(mercantile.tiles(*BBOX, ZOOM))
    xs, ys = [t.x for t in tiles], [t.y for t in tiles]
    return tiles, (min(xs), min(ys), max(xs), max(ys))


def mosaic(client: httpx.Client, valid: datetime) -> np.ndarray:
    """The region's z7 ``.npy`` tiles at ``valid``, as one float32 array (mm/h, NaN = no data)."""
    tiles, (x0, y0, x1, y1) = region_tiles()
    out = np.full(((y1 - y0 + 1) * TILE, (x1 - x0 + 1) * TILE), np.nan, dtype=np.float32)
    for t in tiles:
        response = client.get(f"/tiles/{LAYER}/{format_utc(valid)}/{t.z}/{t.x}/{t.y}.npy")
        if response.status_code != 200:
            raise SystemExit(f"tile {t} at {format_utc(valid)}: {response.status_code} {response.text[:200]}")
        r, c = (t.y - y0) * TILE, (t.x - x0) * TILE
        out[r : r + TILE, c : c + TILE] = np.load(io.BytesIO(response.content), allow_pickle=False)
    return out


def csi(forecast: np.ndarray, observed: np.ndarray, valid: np.ndarray, threshold: float) -> float:
    with np.errstate(invalid="ignore"):
        f = (forecast >= threshold) & valid
        o = (observed >= threshold) & valid
    union = np.count_nonzero(f | o)
    return np.count_nonzero(f & o) / union if union else float("nan")


# A forecaster: (observed mosaics by time, init, feed step, leads in minutes) -> forecasts per lead.
Forecaster = Callable[[dict[datetime, np.ndarray], datetime, timedelta, list[int]], list[np.ndarray]]


def pysteps_forecaster(frames: int, step_min: int | None) -> tuple[str, Forecaster] | None:
    """pySTEPS LK + extrapolation on up to ``frames`` mosaics ``step_min`` apart (None: the feed's cadence).

    Frames ``step_min`` apart that the sequence lacks (before its start) are
    left out, down to two, as ingest does for its own motion.
    """
    try:
        from pysteps import motion as ps_motion
        from pysteps import nowcasts as ps_nowcasts
        from pysteps.utils import transformation
    except ImportError as exc:
        print(f"# pySTEPS not available ({exc}); install with .venv/bin/pip install -e '.[bench]'")
        return None
    lk = ps_motion.get_method("LK")
    extrapolate = ps_nowcasts.get_method("extrapolation")

    def run(observed, init, feed_step, leads_min):
        step = timedelta(minutes=step_min) if step_min else feed_step
        times = [init - k * step for k in range(frames - 1, -1, -1)]
        stack = np.stack([observed[t] for t in times if t in observed]).astype(np.float64)
        if len(stack) < 2:
            raise SystemExit(f"pySTEPS: fewer than 2 frames {step} apart up to {format_utc(init)}")
        dbr, _ = transformation.dB_transform(stack, threshold=0.1, zerovalue=-15.0)
        velocity = lk(dbr)
        steps = [lead / (step.total_seconds() / 60) for lead in leads_min]
        with np.errstate(invalid="ignore"):
            fc = extrapolate(dbr[-1], velocity, steps)
            rain = np.where(fc >= -10.0, np.power(10.0, fc / 10.0), 0.0)
        rain[np.isnan(fc)] = np.nan
        return list(rain.astype(np.float32))

    label = f"pySTEPS LK ({frames} frames " + (f"{step_min} min apart)" if step_min else "of the feed)")
    return label, run


def run(folder: Path = MRMS_DIR, inits: list[str] = ("00:10", "00:20", "00:30"), leads_min: list[int] = (10, 20, 30, 40, 50, 60),
        pysteps_configs: list[tuple[int, int | None]] = ((3, None), (3, 6))) -> RealResult:
    """Ingest, serve and score; ``pysteps_configs``: (frames, minutes apart or None for the feed's cadence)."""
    files = mrms_files(folder)
    times = sorted(files)
    feed_step = min(b - a for a, b in zip(times, times[1:]))
    day = times[0].replace(hour=0, minute=0, second=0)
    init_times = [day + timedelta(hours=int(s[:2]), minutes=int(s[3:])) for s in inits]
    for t in init_times:
        if t not in files:
            raise SystemExit(f"no MRMS file at the initialisation time {format_utc(t)}")
    pysteps = [p for p in (pysteps_forecaster(n, s) for n, s in pysteps_configs) if p]
    labels = ["wxtiles", *(p[0] for p in pysteps), "persistence"]
    csi_all = np.full((len(labels), len(init_times), len(leads_min), len(THRESHOLDS)), np.nan)
    timing: dict[str, float] = {}
    nowcasts: dict[datetime, list[np.ndarray | None]] = {}
    with tempfile.TemporaryDirectory(prefix="wxtiles-mrms-") as tmp:
        store = str(Path(tmp) / "store")
        done: set[datetime] = set()
        ingest_s = 0.0
        for init in init_times:
            batch = [t for t in times if t <= init and t not in done]
            ingest_s += ingest(store, [files[t] for t in batch])
            done.update(batch)
            with wxtiles_serving(store) as (_, base), httpx.Client(base_url=base, timeout=120) as client:
                began = time.perf_counter()
                nowcasts[init] = [mosaic(client, init + timedelta(minutes=m)) if init + timedelta(minutes=m) in files else None
                                  for m in leads_min]
                timing.setdefault("wxtiles nowcast tiles s", 0.0)
                timing["wxtiles nowcast tiles s"] += time.perf_counter() - began
        rest = [t for t in times if t not in done]
        if rest:
            ingest_s += ingest(store, [files[t] for t in rest])
        timing["ingest s per file"] = ingest_s / len(times)
        with wxtiles_serving(store) as (_, base), httpx.Client(base_url=base, timeout=120) as client:
            observed = {t: mosaic(client, t) for t in times}
        motion_s = time_motion(store, times[len(times) // 2])
        if motion_s is not None:
            timing["motion s per continental frame"] = motion_s
    for ii, init in enumerate(init_times):
        forecasts = [nowcasts[init]]
        for label, fn in pysteps:
            began = time.perf_counter()
            reach = [m for m in leads_min if init + timedelta(minutes=m) in observed]
            out = iter(fn(observed, init, feed_step, reach))
            forecasts.append([next(out) if init + timedelta(minutes=m) in observed else None for m in leads_min])
            timing[f"{label} s"] = timing.get(f"{label} s", 0.0) + time.perf_counter() - began
        forecasts.append([observed[init]] * len(leads_min))
        for li, m in enumerate(leads_min):
            obs = observed.get(init + timedelta(minutes=m))
            if obs is None:
                continue
            valid = np.isfinite(obs)
            for fc in forecasts:
                valid &= np.isfinite(fc[li])
            for fi, fc in enumerate(forecasts):
                for ti, thr in enumerate(THRESHOLDS):
                    csi_all[fi, ii, li, ti] = csi(fc[li], obs, valid, thr)
    tiles, _ = region_tiles()
    note = (f"{len(times)} MRMS PrecipRate files {format_utc(times[0])} to {format_utc(times[-1])} every "
            f"{feed_step.total_seconds() / 60:g} min, ingested with `wxtiles ingest --layer {LAYER}`; {len(tiles)} z{ZOOM} "
            f".npy tiles over {BBOX[0]:g}..{BBOX[2]:g} E, {BBOX[1]:g}..{BBOX[3]:g} N")
    return RealResult(labels, init_times, list(leads_min), csi_all, note, timing)


def time_motion(store_url: str, valid: datetime) -> float | None:
    """Seconds of ``ingest.motion.build_motion`` for the continental frame at ``valid`` (best of 2)."""
    from ingest.motion import build_motion
    from tileserver.core.layers import LAYERS
    from tileserver.store.storage import open_storage
    from tileserver.store import Store

    store = Store(open_storage(store_url))
    catalog = store.load_catalog(LAYER)
    frame = next((f for f in catalog.frames if f.time == valid), None)
    if frame is None:
        return None
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):
            began = time.perf_counter()
            build_motion(store, LAYERS[LAYER], store.storage.gdal_path(frame.key), frame.time, Path(tmp) / "m.tif", catalog)
            best = min(best, time.perf_counter() - began)
    return best


def print_real(res: RealResult) -> None:
    print()
    print("=" * 100)
    print(f"Real radar: {res.note}")
    print(f"Initialisations {', '.join(f'{t:%H:%M}' for t in res.inits)} UTC; CSI per nowcast on pixels valid in "
          "the observation and every forecast, averaged over the initialisations that reach each lead")
    mean = res.mean_csi()
    print("\n| forecast, threshold | " + " | ".join(f"+{m}" for m in res.leads_min) + " | mean |")
    print("|---|" + "---|" * (len(res.leads_min) + 1))
    for ti, thr in enumerate(THRESHOLDS):
        for fi, label in enumerate(res.labels):
            row = mean[fi, :, ti]
            cells = " | ".join("-" if np.isnan(v) else f"{v:.3f}" for v in row)
            print(f"| {label}, {thr:g} mm/h | {cells} | {np.nanmean(row):.3f} |")
    print("\nMean CSI over leads and thresholds: " + ", ".join(
        f"{label} {np.nanmean(mean[fi]):.3f}" for fi, label in enumerate(res.labels)))
    ws = mean[0]
    for fi, label in enumerate(res.labels[1:], start=1):
        diff = ws - mean[fi]
        print(f"wxtiles - {label}: mean {np.nanmean(diff):+.3f}, worst {np.nanmin(diff):+.3f}")
    print("\nTiming: " + ", ".join(f"{k} {v:.2f}" for k, v in res.timing.items()))
