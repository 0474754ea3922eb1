"""Nowcast skill on a real radar sequence, in tile space as users receive it.

Used by ``benchmarks/nowcast_skill.py``: by default on the 2-minute MRMS
``PrecipRate`` files of ``../shared/data/mrms-20190610`` (:func:`mrms_sequence`),
or on any sequence of files ``wxtiles ingest`` reads for a nowcast layer
(``--sequence FILE ... --layer LAYER``, :func:`file_sequence`: ODIM_H5, GRIB,
NetCDF or GeoTIFF, from any network). The files are ingested with
``wxtiles ingest --layer LAYER`` into a temporary store, in stages: all frames
up to the first initialisation time, then up to the next, and so on, so that at
each stage the newest frame is the initialisation and ``wxtiles serve`` answers
nowcast tiles from it (with the motion ingest estimated for it). The rest of
the sequence is ingested last and the observed tiles are fetched.

Forecasts, all on the region's tiles as ``.npy`` (the layer's units, NaN = no
coverage):

* **wxtiles**: the server's nowcast tiles at each lead;
* **pySTEPS**: Lucas-Kanade on the dB-transformed rain rate of mosaics of the
  observed tiles (``dB_transform(threshold=0.1, zerovalue=-15)``; reflectivity
  goes to rain rate and back through Z = 200 R^1.6), then the ``extrapolation``
  nowcast; on the feed's last 3 frames, and on 3 frames as far apart as ingest
  takes its motion frames (when that differs from the feed's interval);
* **persistence**: the observed tiles at the initialisation time.

CSI at the layer's thresholds on the pixels valid in the observation and in
every forecast, per nowcast, then averaged over the initialisation times.
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
from tileserver.core.layers import LAYERS  # noqa: E402
from tileserver.core.timeutil import format_utc  # noqa: E402

MRMS_DIR = ROOT.parent / "shared" / "data" / "mrms-20190610"
LAYER = "precip-rate"
BBOX = (-99.0, 30.0, -81.0, 46.0)  # west, south, east, north
ZOOM = 7
TILE = 256
THRESHOLDS = (1.0, 5.0, 10.0)  # mm/h
LEADS = (10, 20, 30, 40, 50, 60)
_STAMP = re.compile(r"(\d{8})-(\d{6})\.grib2(\.gz)?$")
# A region of at most this many tiles a side is fetched at the deepest zoom that fits it.
REGION_TILES = 8


@dataclass(frozen=True)
class RealSequence:
    """What is scored: files by valid time, the layer they go to, the region, initialisations and leads."""

    name: str
    files: dict[datetime, Path]
    layer: str
    bbox: tuple[float, float, float, float]  # west, south, east, north
    zoom: int
    inits: tuple[datetime, ...]
    leads_min: tuple[int, ...] = LEADS

    @property
    def times(self) -> list[datetime]:
        return sorted(self.files)

    @property
    def feed_step(self) -> timedelta:
        times = self.times
        return min(b - a for a, b in zip(times, times[1:]))

    @property
    def thresholds(self) -> tuple[float, ...]:
        return tuple(LAYERS[self.layer].thresholds)

    @property
    def units(self) -> str:
        return LAYERS[self.layer].units


@dataclass
class RealResult:
    """CSI per forecaster, initialisation, lead and threshold (NaN: no event, or no data that late)."""

    labels: list[str]
    inits: list[datetime]
    leads_min: list[int]
    csi: np.ndarray  # (forecasters, inits, leads, thresholds)
    note: str
    timing: dict[str, float]
    units: str = "mm/h"
    thresholds: tuple[float, ...] = THRESHOLDS

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


def ingest(store: str, paths: list[Path], layer: str = LAYER) -> float:
    """``wxtiles ingest --layer LAYER`` of ``paths`` into ``store``; seconds taken."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tileserver.cli", "ingest", "--layer", layer, "--quiet", *map(str, paths)],
        env={**os.environ, "WXTILES_STORE": store}, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"wxtiles ingest failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return time.perf_counter() - began


def region_tiles(bbox: tuple[float, float, float, float] = BBOX, zoom: int = ZOOM
                 ) -> tuple[list[mercantile.Tile], tuple[int, int, int, int]]:
    tiles = list(mercantile.tiles(*bbox, zoom))
    xs, ys = [t.x for t in tiles], [t.y for t in tiles]
    return tiles, (min(xs), min(ys), max(xs), max(ys))


def region_zoom(bbox: tuple[float, float, float, float], deepest: int = 10) -> int:
    """The deepest zoom (up to ``deepest``) at which ``bbox`` spans at most REGION_TILES tiles a side."""
    for zoom in range(deepest, -1, -1):
        _, (x0, y0, x1, y1) = region_tiles(bbox, zoom)
        if max(x1 - x0, y1 - y0) < REGION_TILES:
            return zoom
    return 0


def mosaic(client: httpx.Client, valid: datetime, seq: RealSequence | None = None) -> np.ndarray:
    """The region's ``.npy`` tiles at ``valid``, as one float32 array (the layer's units, NaN = no data)."""
    layer, bbox, zoom = (seq.layer, seq.bbox, seq.zoom) if seq else (LAYER, BBOX, ZOOM)
    tiles, (x0, y0, x1, y1) = region_tiles(bbox, zoom)
    out = np.full(((y1 - y0 + 1) * TILE, (x1 - x0 + 1) * TILE), np.nan, dtype=np.float32)
    for t in tiles:
        response = client.get(f"/tiles/{layer}/{format_utc(valid)}/{t.z}/{t.x}/{t.y}.npy")
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


def mrms_sequence(folder: Path = MRMS_DIR, inits: tuple[str, ...] = ("00:10", "00:20", "00:30")) -> RealSequence:
    """The MRMS ``PrecipRate`` files of ``folder``: the central US at z7, initialisations at ``inits`` (HH:MM)."""
    files = mrms_files(folder)
    day = min(files).replace(hour=0, minute=0, second=0)
    init_times = tuple(day + timedelta(hours=int(s[:2]), minutes=int(s[3:])) for s in inits)
    for t in init_times:
        if t not in files:
            raise SystemExit(f"no MRMS file at the initialisation time {format_utc(t)}")
    return RealSequence("MRMS PrecipRate", files, LAYER, BBOX, ZOOM, init_times)


def file_sequence(paths: list[Path], layer: str, bbox: tuple[float, float, float, float] | None = None,
                  inits: list[str] | None = None) -> RealSequence:
    """Any files ``wxtiles ingest --layer LAYER`` reads: valid times and coverage from ``wxtiles inspect``.

    ``bbox`` defaults to the first file's coverage; ``inits`` (``HH:MM`` of the
    first file's day, or full times) to up to four frames spread over the part
    of the sequence that has motion frames behind it and a first lead ahead.
    """
    from ingest.inspect import inspect_file

    if layer not in LAYERS or not LAYERS[layer].nowcast:
        nowcast = ", ".join(sorted(k for k, v in LAYERS.items() if v.nowcast))
        raise SystemExit(f"--layer {layer}: not a nowcast layer (nowcast layers: {nowcast})")
    files: dict[datetime, Path] = {}
    coverage = None
    for path in paths:
        info = inspect_file(Path(path))
        choice = info.layers.get(layer, {})
        if info.error or "bands" not in choice:
            raise SystemExit(f"{path}: {info.error or choice.get('reason', f'nothing for layer {layer}')}")
        valid = {f.valid for f in info.fields if f.band in choice["bands"] and f.valid}
        if len(valid) != 1:
            raise SystemExit(f"{path}: {len(valid)} valid times for layer {layer} (need one per file)")
        when = datetime.strptime(valid.pop(), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        if when in files:
            raise SystemExit(f"{path} and {files[when]} are both valid at {format_utc(when)}")
        files[when] = Path(path)
        coverage = coverage or info.bounds
    if len(files) < 4:
        raise SystemExit(f"need at least 4 frames, got {len(files)}")
    times = sorted(files)
    area = tuple(bbox or coverage)
    if inits:
        day = times[0].replace(hour=0, minute=0, second=0)
        init_times = tuple(day + timedelta(hours=int(t[:2]), minutes=int(t[3:])) if len(t) == 5 else
                           datetime.fromisoformat(t.replace("Z", "+00:00")) for t in inits)
        missing = [format_utc(t) for t in init_times if t not in files]
        if missing:
            raise SystemExit(f"no file valid at the initialisation time(s) {', '.join(missing)}")
    else:
        first = min(LEADS)
        usable = [t for t in times if t - times[0] >= timedelta(minutes=10) and t + timedelta(minutes=first) in files]
        if not usable:
            raise SystemExit(f"no frame has 10 minutes of frames before it and one {first} minutes after it")
        picks = sorted({usable[round(i * (len(usable) - 1) / 3)] for i in range(4)})
        init_times = tuple(picks)
    return RealSequence(f"{len(files)} files", files, layer, area, region_zoom(area), init_times)


def motion_step(feed: timedelta) -> timedelta:
    """How far apart ingest takes the frames it estimates motion from, for a feed of this interval."""
    from ingest.motion import FRAME_STEP

    return feed * max(1, int(FRAME_STEP / feed + 0.5))


# A forecaster: (observed mosaics by time, init, feed step, leads in minutes) -> forecasts per lead.
Forecaster = Callable[[dict[datetime, np.ndarray], datetime, timedelta, list[int]], list[np.ndarray]]


def pysteps_forecaster(frames: int, step: timedelta | None, units: str = "mm/h") -> tuple[str, Forecaster] | None:
    """pySTEPS LK + extrapolation on up to ``frames`` mosaics ``step`` apart (None: the feed's cadence).

    Frames ``step`` apart that the sequence lacks (before its start) are left
    out, down to two, as ingest does for its own motion. Reflectivity (``units``
    dBZ) goes to rain rate and back through Z = 200 R^1.6.
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
    dbz = units == "dBZ"

    def run(observed, init, feed_step, leads_min):
        every = step or feed_step
        times = [init - k * every for k in range(frames - 1, -1, -1)]
        stack = np.stack([observed[t] for t in times if t in observed]).astype(np.float64)
        if len(stack) < 2:
            raise SystemExit(f"pySTEPS: fewer than 2 frames {every} apart up to {format_utc(init)}")
        if dbz:
            with np.errstate(invalid="ignore", over="ignore"):
                stack = np.where(np.isnan(stack), np.nan, np.power(np.power(10.0, stack / 10.0) / 200.0, 1 / 1.6))
        dbr, _ = transformation.dB_transform(stack, threshold=0.1, zerovalue=-15.0)
        velocity = lk(dbr)
        steps = [lead / (every.total_seconds() / 60) for lead in leads_min]
        with np.errstate(invalid="ignore"):
            fc = extrapolate(dbr[-1], velocity, steps)
            rain = np.where(fc >= -10.0, np.power(10.0, fc / 10.0), 0.0)
            if dbz:
                rain = np.where(rain > 0, 10 * np.log10(200.0 * np.power(np.maximum(rain, 1e-12), 1.6)), -np.inf)
        rain[np.isnan(fc)] = np.nan
        return list(rain.astype(np.float32))

    label = f"pySTEPS LK ({frames} frames " + (f"{step.total_seconds() / 60:g} min apart)" if step else "of the feed)")
    return label, run


def run(seq: RealSequence | None = None, pysteps_frames: int | None = 3) -> RealResult:
    """Ingest, serve and score ``seq`` (default: the MRMS sequence); ``pysteps_frames`` None: no pySTEPS.

    pySTEPS runs on the feed's last frames and, when ingest takes its motion
    frames further apart than the feed's interval, on frames that far apart.
    """
    seq = seq or mrms_sequence()
    times, files, leads_min, feed_step = seq.times, seq.files, list(seq.leads_min), seq.feed_step
    steps = [None] + ([motion_step(feed_step)] if motion_step(feed_step) != feed_step else [])
    pysteps = [] if pysteps_frames is None else [
        p for p in (pysteps_forecaster(pysteps_frames, s, seq.units) for s in steps) if p]
    labels = ["wxtiles", *(p[0] for p in pysteps), "persistence"]
    thresholds = seq.thresholds
    csi_all = np.full((len(labels), len(seq.inits), len(leads_min), len(thresholds)), np.nan)
    timing: dict[str, float] = {}
    nowcasts: dict[datetime, list[np.ndarray | None]] = {}
    with tempfile.TemporaryDirectory(prefix="wxtiles-skill-") as tmp:
        store = str(Path(tmp) / "store")
        done: set[datetime] = set()
        ingest_s = 0.0
        for init in sorted(seq.inits):
            batch = [t for t in times if t <= init and t not in done]
            ingest_s += ingest(store, [files[t] for t in batch], seq.layer)
            done.update(batch)
            with wxtiles_serving(store) as (_, base), httpx.Client(base_url=base, timeout=120) as client:
                began = time.perf_counter()
                nowcasts[init] = [mosaic(client, init + timedelta(minutes=m), seq) if init + timedelta(minutes=m) in files
                                  else None for m in leads_min]
                timing.setdefault("wxtiles nowcast tiles s", 0.0)
                timing["wxtiles nowcast tiles s"] += time.perf_counter() - began
        rest = [t for t in times if t not in done]
        if rest:
            ingest_s += ingest(store, [files[t] for t in rest], seq.layer)
        timing["ingest s per file"] = ingest_s / len(times)
        with wxtiles_serving(store) as (_, base), httpx.Client(base_url=base, timeout=120) as client:
            observed = {t: mosaic(client, t, seq) for t in times}
        motion_s = time_motion(store, seq.layer, times[len(times) // 2])
        if motion_s is not None:
            timing["motion s per frame"] = motion_s
    for ii, init in enumerate(seq.inits):
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
            valid = ~np.isnan(obs)  # no echo (-inf in dBZ) is a valid "below every threshold"
            for fc in forecasts:
                valid &= ~np.isnan(fc[li])
            for fi, fc in enumerate(forecasts):
                for ti, thr in enumerate(thresholds):
                    csi_all[fi, ii, li, ti] = csi(fc[li], obs, valid, thr)
    tiles, _ = region_tiles(seq.bbox, seq.zoom)
    west, south, east, north = seq.bbox
    note = (f"{seq.name} ({seq.layer}) {format_utc(times[0])} to {format_utc(times[-1])} every "
            f"{feed_step.total_seconds() / 60:g} min, ingested with `wxtiles ingest --layer {seq.layer}`; "
            f"{len(tiles)} z{seq.zoom} .npy tiles over {west:g}..{east:g} E, {south:g}..{north:g} N")
    return RealResult(labels, list(seq.inits), leads_min, csi_all, note, timing, seq.units, thresholds)


def time_motion(store_url: str, layer: str, valid: datetime) -> float | None:
    """Seconds of ``ingest.motion.build_motion`` for the frame at ``valid`` (best of 2)."""
    from ingest.motion import build_motion
    from tileserver.store import Store
    from tileserver.store.storage import open_storage

    store = Store(open_storage(store_url))
    catalog = store.load_catalog(layer)
    frame = next((f for f in catalog.frames if f.time == valid), None)
    if frame is None:
        return None
    best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):
            began = time.perf_counter()
            build_motion(store, LAYERS[layer], store.storage.gdal_path(frame.key), frame.time, Path(tmp) / "m.tif", catalog)
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
    for ti, thr in enumerate(res.thresholds):
        for fi, label in enumerate(res.labels):
            row = mean[fi, :, ti]
            cells = " | ".join("-" if np.isnan(v) else f"{v:.3f}" for v in row)
            print(f"| {label}, {thr:g} {res.units} | {cells} | {np.nanmean(row):.3f} |")
    print("\nMean CSI over leads and thresholds: " + ", ".join(
        f"{label} {np.nanmean(mean[fi]):.3f}" for fi, label in enumerate(res.labels)))
    ws = mean[0]
    for fi, label in enumerate(res.labels[1:], start=1):
        diff = ws - mean[fi]
        print(f"wxtiles - {label}: mean {np.nanmean(diff):+.3f}, worst {np.nanmin(diff):+.3f}")
    print("\nTiming: " + ", ".join(f"{k} {v:.2f}" for k, v in res.timing.items()))
