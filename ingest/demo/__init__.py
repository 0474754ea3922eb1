"""The demo: synthetic radar and model files in NOAA's formats, ingested for real.

Everything here is SYNTHETIC (see ``ingest/demo/synthetic.py``): storm cells from a
generator, written as MRMS-style ``.grib2.gz`` and HRRR-style GRIB2 files, then
fed through the same ``ingest_file`` path that real NOAA files take.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ingest.demo import samples, synthetic
from ingest.errors import IngestError
from ingest.pipeline import ingest_file
from tileserver.core.layers import LAYERS
from tileserver.store import Store
from tileserver.core.timeutil import utcnow

STEP = timedelta(minutes=5)
FULL_SHAPE = (3500, 7000)  # MRMS CONUS at 0.01 deg
SMALL_SHAPE = (700, 1400)  # 0.05 deg, for a quick look
HRRR_LEADS_H = range(0, 7)
GFS_LEADS_H = range(0, 13, 3)
# 1 deg: the global model around the HRRR domain, for the best-of-models view.
GFS_SHAPE = (181, 360)
ORIGIN_REUSE = timedelta(hours=3)


@dataclass(frozen=True)
class Job:
    """One source file to make (if missing) and ingest."""

    kind: str  # "radar", "hrrr" or "gfs"
    time: datetime  # radar valid time, or model run time
    lead_h: int = 0


def marshall_palmer_rate(dbz: np.ndarray) -> np.ndarray:
    """Rain rate (mm/h) from dBZ by Z = 200 R^1.6, capped at 53 dBZ against hail.

    MRMS conventions: 0 = no rain, -3 = no coverage.
    """
    capped = np.minimum(dbz, 53.0)
    rate = (10.0 ** (capped / 10.0) / 200.0) ** (1 / 1.6)
    rate = np.where(dbz > 5.0, rate, 0.0)
    rate = np.where(rate < 0.1, 0.0, np.round(rate, 1))
    return np.where(dbz <= -999.0, -3.0, rate).astype(np.float32)


def _radar_files(job: Job, workdir: Path, shape: tuple[int, int], origin: datetime) -> list[tuple[str, Path]]:
    composite = workdir / samples.mrms_filename("MergedReflectivityQCComposite", "00.50", job.time)
    rate = workdir / samples.mrms_filename("PrecipRate", "00.00", job.time)
    if not (composite.exists() and rate.exists()):
        # A synthetic frame depends only on its offset from the sequence origin:
        # frame 1 of a two-frame sequence whose step is that offset.
        offset = job.time - origin
        frames = synthetic.radar_sequence(origin, steps=2, step=offset, shape=shape) if offset else synthetic.radar_sequence(origin, steps=1, shape=shape)
        *_, (_, dbz) = frames
        samples.write_mrms_grib2(_partial(composite), dbz, job.time)
        samples.write_mrms_grib2(_partial(rate), marshall_palmer_rate(dbz), job.time, product="PrecipRate")
        _partial(composite).rename(composite)
        _partial(rate).rename(rate)
    return [("reflectivity", composite), ("precip-rate", rate)]


def _hrrr_files(job: Job, workdir: Path) -> list[tuple[str, Path]]:
    path = workdir / f"hrrr.{job.time:%Y%m%d}.t{job.time:%H}z.wrfsfcf{job.lead_h:02d}.grib2"
    if not path.exists():
        samples.write_hrrr_grib2(_partial(path), job.time, timedelta(hours=job.lead_h))
        _partial(path).rename(path)
    return [("hrrr-temperature-2m", path), ("hrrr-wind-speed-10m", path), ("hrrr-reflectivity", path)]


def _gfs_files(job: Job, workdir: Path) -> list[tuple[str, Path]]:
    path = workdir / f"gfs.{job.time:%Y%m%d}.t{job.time:%H}z.pgrb2.1p00.f{job.lead_h:03d}"
    if not path.exists():
        samples.write_gfs_grib2(_partial(path), job.time, timedelta(hours=job.lead_h), shape=GFS_SHAPE, seed=job.lead_h)
        _partial(path).rename(path)
    return [("gfs-temperature-2m", path), ("gfs-wind-speed-10m", path)]


def _partial(path: Path) -> Path:
    # Written under a temporary name first so an interrupted demo never leaves a
    # truncated file that the next run would take for complete.
    return path.with_name(path.name + ".partial" + "".join(path.suffixes[-1:]))


def _run_job(job: Job, workdir: str, store: Store, shape: tuple[int, int], origin: datetime) -> list[str]:
    folder = Path(workdir)
    if job.kind == "radar":
        files = _radar_files(job, folder, shape, origin)
    else:
        files = _hrrr_files(job, folder) if job.kind == "hrrr" else _gfs_files(job, folder)
    lines = []
    for layer_id, path in files:
        try:
            result = ingest_file(store, path, LAYERS[layer_id])
            lines.append(f"{result.status}: {layer_id} {result.frame.time:%Y-%m-%dT%H:%MZ}")
        except IngestError as exc:
            lines.append(f"{path.name}: {exc}")
    return lines


def _origin(workdir: Path, start: datetime) -> datetime:
    """The synthetic storms' time origin, kept across demo runs for a few hours.

    Re-running the demo then extends the same storms instead of starting new
    ones, so the loop has no jump (and frames already ingested stay identical).
    """
    marker = workdir / "synthetic-origin.txt"
    if marker.exists():
        try:
            origin = datetime.fromisoformat(marker.read_text().strip())
            if origin <= start and start - origin <= ORIGIN_REUSE:
                return origin
        except ValueError:
            pass
    marker.write_text(start.isoformat())
    return start


def run_demo(store: Store, workdir: Path, steps: int = 25, full_size: bool = True, now: datetime | None = None,
             echo: Callable[[str], None] = print) -> None:
    """Make ``steps`` radar frames ending now and two HRRR runs, and ingest them all."""
    if steps < 1:
        raise ValueError("steps must be at least 1")
    now = now or utcnow()
    end = now.replace(second=0, microsecond=0) - timedelta(minutes=now.minute % 5)
    start = end - (steps - 1) * STEP
    newest_run = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    jobs = [Job("radar", start + i * STEP) for i in range(steps)]
    jobs += [Job("hrrr", run, lead) for run in (newest_run - timedelta(hours=1), newest_run) for lead in HRRR_LEADS_H]
    gfs_run = newest_run.replace(hour=newest_run.hour - newest_run.hour % 6)
    jobs += [Job("gfs", gfs_run, lead) for lead in GFS_LEADS_H]
    workdir.mkdir(parents=True, exist_ok=True)
    origin = _origin(workdir, start)
    shape = FULL_SHAPE if full_size else SMALL_SHAPE
    echo(f"demo: SYNTHETIC data, {steps} radar frames {start:%H:%M}-{end:%H:%M} UTC on a {shape[1]}x{shape[0]} grid "
         f"HRRR-style runs {newest_run - timedelta(hours=1):%H}Z and {newest_run:%H}Z and a GFS-style {gfs_run:%H}Z run; "
         f"files in {workdir}/")
    failures = []
    with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 4)) as pool:
        futures = [pool.submit(_run_job, job, str(workdir), store, shape, origin) for job in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), unit="file", desc="generate + ingest"):
            failures += [line for line in future.result() if not line.startswith(("published", "unchanged"))]
    for layer_id in LAYERS:
        store.prune(layer_id)
    for line in failures:
        echo(line)
    if failures:
        raise IngestError(f"{len(failures)} demo files failed to ingest")
