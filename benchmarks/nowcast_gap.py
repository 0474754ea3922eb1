"""Where wxtiles' nowcast and pySTEPS differ on the real MRMS sequence, one cause at a time, in process.

```sh
.venv/bin/python benchmarks/nowcast_gap.py [--store DIR]   # needs pySTEPS (pip install -e '.[bench]')
```

The sequence, initialisations, region, leads, thresholds and pySTEPS set-up
are ``radar_skill.py``'s (pySTEPS on 3 frames 6 minutes apart). The files are
ingested in its stages into ``--store`` (kept, and reused when it already holds
them), observed z7 tiles are fetched from ``wxtiles serve`` with one tile of
margin around the region, and then every forecast is made in this process:

* **wxtiles**: ``tileserver.service.nowcast.tile_codes``, the server's own code
  path, with the motion field the catalog gives the initialisation;
* our motion field and trajectories (``renderers.nowcast.advection.trace``),
  the base frame sampled at the departure points by the nearest cell (the
  tiles before 823b713), bilinearly in mm/h, or bilinearly in dB (pySTEPS');
* pySTEPS' Lucas-Kanade field with our trajectories (nearest, bilinear in dB);
* pySTEPS as ``radar_skill.py`` runs it, with nearest sampling
  (``interp_order=0``), with our motion field, and with 5-minute sub-steps.

CSI on the pixels valid in the observation, wxtiles, pySTEPS and persistence.
It also prints, per initialisation, the motion field used (the frames and
interval it was estimated from) and how it differs from pySTEPS' in the echo
region (>= 1 mm/h at the initialisation).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import httpx
import mercantile
import numpy as np
import rasterio
from affine import Affine

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import radar_skill  # noqa: E402
from benchmarks.servers import wxtiles_serving  # noqa: E402
from renderers.nowcast.advection import MotionField, trace  # noqa: E402
from renderers.nowcast.tiles import departure_grid  # noqa: E402
from tileserver.core import grid  # noqa: E402
from tileserver.core.layers import LAYERS  # noqa: E402
from tileserver.core.reader import read_motion  # noqa: E402
from tileserver.core.timeutil import format_utc  # noqa: E402
from tileserver.service.nowcast import tile_codes  # noqa: E402
from tileserver.store import Catalog, Frame, Store  # noqa: E402
from tileserver.store.storage import open_storage  # noqa: E402

LEADS = [10, 20, 30, 40, 50, 60]
INITS = ("00:10", "00:20", "00:30")
STEP = timedelta(minutes=6)  # pySTEPS' frames, and its velocity unit
MARGIN = 1  # tiles of observed mosaic around the region, for departure points outside it
WXTILES, PYSTEPS, PERSISTENCE = "wxtiles (server code path)", "pySTEPS LK, 3 frames 6 min apart", "persistence"


def staged_store(folder: Path, files: dict[datetime, Path], inits: list[datetime]) -> str:
    """The sequence ingested as ``radar_skill.run`` does: up to each initialisation, then the rest."""
    store = str(folder)
    if (folder / radar_skill.LAYER).exists():
        return store
    times, done = sorted(files), set()
    for init in inits:
        batch = [t for t in times if t <= init and t not in done]
        radar_skill.ingest(store, [files[t] for t in batch])
        done.update(batch)
    radar_skill.ingest(store, [files[t] for t in times if t not in done])
    return store


class Region:
    """The z7 region of ``radar_skill`` (the core) inside a margin of whole tiles."""

    def __init__(self) -> None:
        self.tiles, (self.x0, self.y0, x1, _) = radar_skill.region_tiles()
        self.zoom, self.tile = radar_skill.ZOOM, radar_skill.TILE
        self.pixel = grid.resolution(self.zoom)
        self.size = (x1 - self.x0 + 1) * self.tile
        self.left, _, _, self.top = grid.xy_bounds(mercantile.Tile(self.x0, self.y0, self.zoom))
        self.pad = MARGIN * self.tile

    def fetch(self, client: httpx.Client, valid: datetime) -> np.ndarray:
        """Observed mm/h (NaN = no coverage) over the core and its margin."""
        n = self.size + 2 * self.pad
        out = np.full((n, n), np.nan, np.float32)
        for dx in range(-MARGIN, self.size // self.tile + MARGIN):
            for dy in range(-MARGIN, self.size // self.tile + MARGIN):
                url = f"/tiles/{radar_skill.LAYER}/{format_utc(valid)}/{self.zoom}/{self.x0 + dx}/{self.y0 + dy}.npy"
                response = client.get(url)
                if response.status_code != 200:
                    raise SystemExit(f"{url}: {response.status_code} {response.text[:200]}")
                r, c = (dy + MARGIN) * self.tile, (dx + MARGIN) * self.tile
                out[r : r + self.tile, c : c + self.tile] = np.load(io.BytesIO(response.content), allow_pickle=False)
        return out

    def core(self, padded: np.ndarray) -> np.ndarray:
        return padded[self.pad : self.pad + self.size, self.pad : self.pad + self.size]

    def sample(self, padded: np.ndarray, x: np.ndarray, y: np.ndarray, bilinear: bool) -> np.ndarray:
        """``padded`` at mercator points: the cell they fall in, or bilinear between cell centres (NaN outside)."""
        col = (x - (self.left - self.pad * self.pixel)) / self.pixel
        row = ((self.top + self.pad * self.pixel) - y) / self.pixel
        if not bilinear:
            return cv2.remap(padded, np.floor(col).astype(np.float32), np.floor(row).astype(np.float32),
                             cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
        from scipy.ndimage import map_coordinates

        return map_coordinates(padded.astype(np.float64), [row - 0.5, col - 0.5], order=1, mode="constant",
                               cval=np.nan).astype(np.float32)

    def velocity_px(self, field: MotionField) -> np.ndarray:
        """A motion field as pySTEPS' velocity on the core's pixels: (columns, rows) per ``STEP``."""
        xs = self.left + (np.arange(self.size) + 0.5) * self.pixel
        ys = self.top - (np.arange(self.size) + 0.5) * self.pixel
        u, v = field.velocity(*np.meshgrid(xs, ys))
        scale = STEP.total_seconds() / self.pixel
        return np.stack([u * scale, -v * scale]).astype(np.float64)

    def field(self, velocity: np.ndarray) -> MotionField:
        """pySTEPS' velocity on the core's pixels as a motion field (mercator m/s)."""
        scale = self.pixel / STEP.total_seconds()
        return MotionField((velocity[0] * scale).astype(np.float32), (-velocity[1] * scale).astype(np.float32),
                           Affine(self.pixel, 0, self.left, 0, -self.pixel, self.top))


@dataclass
class Staged:
    """The sequence in its staged store, and its observed mosaics over the region (with margin)."""

    day: datetime
    region: Region
    padded: dict[datetime, np.ndarray]
    observed: dict[datetime, np.ndarray]
    store: Store
    catalog: Catalog
    frames: dict[datetime, Frame]

    @classmethod
    def load(cls, mrms: Path, folder: Path) -> Staged:
        """Ingest the files in ``mrms`` into ``folder`` (unless it holds them) and fetch every observed mosaic."""
        files = radar_skill.mrms_files(mrms)
        times = sorted(files)
        day = times[0].replace(hour=0, minute=0, second=0)
        store_url = staged_store(folder, files, [day + timedelta(hours=int(s[:2]), minutes=int(s[3:])) for s in INITS])
        region = Region()
        with wxtiles_serving(store_url) as (_, base), httpx.Client(base_url=base, timeout=120) as client:
            padded = {t: region.fetch(client, t) for t in times}
        store = Store(open_storage(store_url))
        catalog = store.load_catalog(radar_skill.LAYER)
        return cls(day, region, padded, {t: region.core(a) for t, a in padded.items()}, store, catalog,
                   {f.time: f for f in catalog.frames})

    def clock_times(self, clock: Iterable[str]) -> list[datetime]:
        """``HH:MM`` times of the sequence's day."""
        return [self.day + timedelta(hours=int(s[:2]), minutes=int(s[3:])) for s in clock]


def to_db(rain: np.ndarray) -> np.ndarray:
    from pysteps.utils import transformation

    return transformation.dB_transform(np.asarray(rain, np.float64), threshold=0.1, zerovalue=-15.0)[0]


def from_db(db: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        rain = np.where(db >= -10.0, np.power(10.0, db / 10.0), 0.0)
    rain[np.isnan(db)] = np.nan
    return rain.astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mrms", type=Path, default=radar_skill.MRMS_DIR)
    ap.add_argument("--store", type=Path, default=Path("/tmp/wxtiles-nowcast-gap"),
                    help="store to ingest into, kept and reused (default: %(default)s); remove it after changing "
                         "ingest, or its motion fields are the old code's")
    args = ap.parse_args(argv)
    from pysteps import motion as ps_motion
    from pysteps.extrapolation import semilagrangian

    sequence = Staged.load(args.mrms, args.store)
    inits = sequence.clock_times(INITS)
    region, padded, observed = sequence.region, sequence.padded, sequence.observed
    store, catalog, frames = sequence.store, sequence.catalog, sequence.frames
    layer = LAYERS[radar_skill.LAYER]
    lk = ps_motion.get_method("LK")

    def server_path(frame, departures) -> np.ndarray:  # noqa: ANN001
        out = np.full((region.size, region.size), np.nan, np.float32)
        with rasterio.open(store.storage.gdal_path(frame.key)) as dataset:
            for t in region.tiles:
                r, c = (t.y - region.y0) * region.tile, (t.x - region.x0) * region.tile
                codes = tile_codes(dataset, t, region.tile, departures, layer.encoding.no_echo)
                out[r : r + region.tile, c : c + region.tile] = layer.encoding.decode(codes)
        return out

    def along(field: MotionField, init: datetime, lead: int, bilinear: bool, in_db: bool) -> np.ndarray:
        x, y = departure_grid(trace(field, lead * 60.0), region.left, region.top, region.pixel, region.size)
        base = to_db(padded[init]) if in_db else padded[init]
        out = region.sample(base.astype(np.float32), x, y, bilinear)
        return from_db(out) if in_db else out

    def pysteps(init: datetime, velocity: np.ndarray, leads: list[int], **kwargs) -> list[np.ndarray]:
        """pySTEPS' semi-Lagrangian scheme on the dB rain rate; ``leads`` in minutes, one step per lead
        unless ``substep`` (minutes) asks for more."""
        substep = kwargs.pop("substep", None)
        steps = sorted({m / 6 for m in leads} | ({k * substep / 6 for k in range(1, max(leads) // substep + 1)} if substep else set()))
        with np.errstate(invalid="ignore"):
            out = semilagrangian.extrapolate(to_db(observed[init]), velocity, steps, allow_nonfinite_values=True, **kwargs)
        return [from_db(out[steps.index(m / 6)]) for m in leads]

    forecasts: dict[str, dict[tuple[int, int], np.ndarray]] = {}
    for ii, init in enumerate(inits):
        frame = frames[init]
        key = catalog.nowcast_motion(frame)
        with rasterio.open(store.storage.gdal_path(key)) as dataset:
            ours, tags = MotionField(*read_motion(dataset)), dataset.tags()
        used = [t for t in (init - k * STEP for k in (2, 1, 0)) if t in observed]
        print(f"{init:%H:%M}: motion {key.rsplit('/', 1)[-1]} (own field: {key == frame.motion}; estimated from "
              f"{tags.get('frames')} frames {float(tags.get('frame_interval_s', 'nan')) / 60:g} min apart); "
              f"pySTEPS from {', '.join(f'{t:%H:%M}' for t in used)}", flush=True)
        v_lk = lk(to_db(np.stack([observed[t] for t in used])))
        v_ours = region.velocity_px(ours)
        echo = np.nan_to_num(observed[init]) >= 1.0
        diff = v_ours - v_lk
        print(f"  echo region {echo.mean():.1%} of the pixels; px per 6 min: RMS speed ours "
              f"{np.sqrt((v_ours[:, echo] ** 2).sum(0).mean()):.2f}, LK {np.sqrt((v_lk[:, echo] ** 2).sum(0).mean()):.2f}; "
              f"RMS difference {np.sqrt((diff[:, echo] ** 2).sum(0).mean()):.2f}; mean difference (east, south) "
              f"{diff[0][echo].mean():+.2f}, {diff[1][echo].mean():+.2f}", flush=True)
        reach = [m for m in LEADS if init + timedelta(minutes=m) in observed]
        field_lk = region.field(v_lk)
        made: dict[str, Callable[[], list[np.ndarray]]] = {
            WXTILES: lambda: [server_path(frame, trace(ours, m * 60.0)) for m in reach],
            "our field and trajectories, nearest cell": lambda: [along(ours, init, m, False, False) for m in reach],
            "our field and trajectories, bilinear in mm/h": lambda: [along(ours, init, m, True, False) for m in reach],
            "our field and trajectories, bilinear in dB": lambda: [along(ours, init, m, True, True) for m in reach],
            "LK field, our trajectories, nearest cell": lambda: [along(field_lk, init, m, False, False) for m in reach],
            "LK field, our trajectories, bilinear in dB": lambda: [along(field_lk, init, m, True, True) for m in reach],
            PYSTEPS: lambda: pysteps(init, v_lk, reach),
            "pySTEPS LK, nearest cell (interp_order=0)": lambda: pysteps(init, v_lk, reach, interp_order=0),
            "pySTEPS LK, 5-min sub-steps": lambda: pysteps(init, v_lk, reach, substep=5),
            "pySTEPS scheme with our motion field": lambda: pysteps(init, v_ours, reach),
            PERSISTENCE: lambda: [observed[init]] * len(reach),
        }
        for label, make in made.items():
            for m, fc in zip(reach, make()):
                forecasts.setdefault(label, {})[(ii, LEADS.index(m))] = fc
    labels = list(forecasts)
    csi = np.full((len(labels), len(inits), len(LEADS), len(radar_skill.THRESHOLDS)), np.nan)
    for (ii, li) in forecasts[WXTILES]:
        obs = observed[inits[ii] + timedelta(minutes=LEADS[li])]
        valid = np.isfinite(obs)
        for label in (WXTILES, PYSTEPS, PERSISTENCE):
            valid &= np.isfinite(forecasts[label][(ii, li)])
        for fi, label in enumerate(labels):
            for ti, threshold in enumerate(radar_skill.THRESHOLDS):
                csi[fi, ii, li, ti] = radar_skill.csi(forecasts[label][(ii, li)], obs, valid, threshold)
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(csi, axis=1)  # (forecasts, leads, thresholds)
    ref = labels.index(PYSTEPS)
    heads = [f"+{m} {t:g}" for m in LEADS[:2] for t in radar_skill.THRESHOLDS]
    print("\n| forecast (CSI at lead, mm/h) | " + " | ".join(heads) + " | mean | - pySTEPS, mean | - pySTEPS, worst |")
    print("|---|" + "---|" * (len(heads) + 3))
    for fi, label in enumerate(labels):
        cells = [f"{mean[fi, li, ti]:.3f}" for li in range(2) for ti in range(len(radar_skill.THRESHOLDS))]
        diff = mean[fi] - mean[ref]
        print(f"| {label} | " + " | ".join(cells) + f" | {np.nanmean(mean[fi]):.4f} | {np.nanmean(diff):+.4f} | "
              f"{np.nanmin(diff):+.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
