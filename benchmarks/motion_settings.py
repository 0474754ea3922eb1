"""Motion-estimator settings on the real MRMS sequence, side by side with pySTEPS, in process.

```sh
.venv/bin/python benchmarks/motion_settings.py dis dis:k=20 dis:k=8,robust=0 farneback
.venv/bin/python benchmarks/motion_settings.py --inits 00:12,00:16,00:24,00:28,00:34,00:40 dis dis:k=20
```

Each setting (``method:key=value,...`` as in ``nowcast_skill.py --methods``)
replaces the estimator ingest uses (``ingest.motion.build_motion``, which still
chooses the frames, reads them on the ~5 km grid and sets the cell size), the
field is estimated for each initialisation from the store ``nowcast_gap.py``
builds, and the nowcast is drawn along its trajectories, sampled bilinearly in
mm/h (what the server's rain-rate tiles do, to 0.0001 in mean CSI). pySTEPS LK
on 3 frames 6 minutes apart (``radar_skill.py``'s stronger configuration) is
run on the same mosaics, once per set of initialisations.

Initialisations other than the skill table's (``--inits``) hold out part of the
evening: a setting chosen on 00:10/00:20/00:30 should rank the same there.
Leads 10 to 60 minutes where the sequence reaches; CSI at 1, 5 and 10 mm/h on
the pixels valid in the observation and in both forecasts.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from unittest import mock

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import ingest.motion  # noqa: E402
from benchmarks import radar_skill, nowcast_gap  # noqa: E402
from benchmarks.nowcast_skill import _parse_spec  # noqa: E402
from renderers.nowcast import motion  # noqa: E402
from renderers.nowcast.advection import MotionField, trace  # noqa: E402
from renderers.nowcast.tiles import departure_grid  # noqa: E402
from tileserver.core.layers import LAYERS  # noqa: E402
from tileserver.core.reader import read_motion  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("settings", nargs="+", help="method:key=value,... (e.g. dis:k=20)")
    ap.add_argument("--inits", default=",".join(nowcast_gap.INITS), help="HH:MM,... (default: %(default)s)")
    ap.add_argument("--mrms", type=Path, default=radar_skill.MRMS_DIR)
    ap.add_argument("--store", type=Path, default=Path("/tmp/wxtiles-nowcast-gap"),
                    help="store as nowcast_gap.py builds it, kept and reused (default: %(default)s)")
    args = ap.parse_args(argv)
    settings = [(spec, *_parse_spec(spec)) for spec in args.settings]
    from pysteps import motion as ps_motion
    from pysteps.extrapolation import semilagrangian

    sequence = nowcast_gap.Staged.load(args.mrms, args.store)
    inits = sequence.clock_times(args.inits.split(","))
    if any(t not in sequence.frames for t in inits):
        raise SystemExit(f"--inits: every initialisation must be a frame of the sequence "
                         f"({min(sequence.frames):%H:%M} to {max(sequence.frames):%H:%M})")
    region, padded, observed = sequence.region, sequence.padded, sequence.observed
    store, catalog, frames = sequence.store, sequence.catalog, sequence.frames
    layer = LAYERS[radar_skill.LAYER]
    reach = {init: [m for m in nowcast_gap.LEADS if init + timedelta(minutes=m) in observed] for init in inits}

    lk = ps_motion.get_method("LK")
    reference: dict[tuple[datetime, int], np.ndarray] = {}
    for init in inits:
        used = [t for t in (init - k * nowcast_gap.STEP for k in (2, 1, 0)) if t in observed]
        velocity = lk(nowcast_gap.to_db(np.stack([observed[t] for t in used])))
        with np.errstate(invalid="ignore"):
            out = semilagrangian.extrapolate(nowcast_gap.to_db(observed[init]), velocity,
                                             [m / 6 for m in reach[init]], allow_nonfinite_values=True)
        reference.update({(init, m): nowcast_gap.from_db(o) for m, o in zip(reach[init], out)})

    def scores(forecasts: dict[tuple[datetime, int], np.ndarray]) -> np.ndarray:
        """(2, leads, thresholds): mean CSI over the initialisations, the setting's then pySTEPS'."""
        csi = np.full((2, len(inits), len(nowcast_gap.LEADS), len(radar_skill.THRESHOLDS)), np.nan)
        for (init, m), forecast in forecasts.items():
            obs = observed[init + timedelta(minutes=m)]
            valid = np.isfinite(obs) & np.isfinite(forecast) & np.isfinite(reference[init, m])
            i, li = inits.index(init), nowcast_gap.LEADS.index(m)
            for ti, threshold in enumerate(radar_skill.THRESHOLDS):
                csi[0, i, li, ti] = radar_skill.csi(forecast, obs, valid, threshold)
                csi[1, i, li, ti] = radar_skill.csi(reference[init, m], obs, valid, threshold)
        with np.errstate(invalid="ignore"):
            return np.nanmean(csi, axis=1)

    print(f"Initialisations {', '.join(f'{t:%H:%M}' for t in inits)}; leads {nowcast_gap.LEADS[0]} to "
          f"{nowcast_gap.LEADS[-1]} min where the sequence reaches; CSI at "
          f"{', '.join(f'{t:g}' for t in radar_skill.THRESHOLDS)} mm/h\n")
    heads = [f"+10, {t:g}" for t in radar_skill.THRESHOLDS]
    print("| setting | " + " | ".join(heads) + " | mean | pySTEPS mean | - pySTEPS, mean | - pySTEPS, worst | "
          "motion s per init |")
    print("|---|" + "---|" * (len(heads) + 5))
    with tempfile.TemporaryDirectory() as tmp:
        for spec, name, kwargs in settings:
            estimator = functools.partial(motion.estimate_motion, method=name, **kwargs)
            forecasts, spent = {}, 0.0
            with mock.patch.object(ingest.motion, "estimate_motion", estimator):
                for init in inits:
                    out = Path(tmp) / "motion.tif"
                    began = time.perf_counter()
                    ingest.motion.build_motion(store, layer, store.storage.gdal_path(frames[init].key), init, out,
                                               catalog)
                    spent += time.perf_counter() - began
                    with rasterio.open(out) as dataset:
                        field = MotionField(*read_motion(dataset))
                    for m in reach[init]:
                        x, y = departure_grid(trace(field, m * 60.0), region.left, region.top, region.pixel,
                                              region.size)
                        forecasts[init, m] = region.sample(padded[init], x, y, bilinear=True)
            mean = scores(forecasts)
            diff = mean[0] - mean[1]
            cells = " | ".join(f"{mean[0, 0, ti]:.3f}" for ti in range(len(radar_skill.THRESHOLDS)))
            print(f"| {spec} | {cells} | {np.nanmean(mean[0]):.4f} | {np.nanmean(mean[1]):.4f} | "
                  f"{np.nanmean(diff):+.4f} | {np.nanmin(diff):+.4f} | {spent / len(inits):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
