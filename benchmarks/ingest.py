"""Ingest time and peak memory: ``wxtiles ingest`` against GDAL's command-line tools.

Run by hand: ``.venv/bin/python benchmarks/ingest.py [--repeat 3] [--quick]``.
Needs GDAL's tools and GNU time: ``apt-get install -y gdal-bin time``.

One synthetic continental-US reflectivity grid at 0.01 deg (7000 x 3500 float32, from
``ingest.demo.synthetic.radar_sequence``) is written as an MRMS ``.grib2.gz``. The frame
five minutes before it is ingested first (not timed), so the timed ingest runs the
whole pipeline as in production: decode, quantise, warp and write the COG, the
point-series sidecar, motion estimation against the earlier frame, publish, prune.

Each command runs in its own process under ``/usr/bin/time -v`` (wall time and peak
resident set), on the same file:

- ``wxtiles ingest FILE --layer reflectivity`` (the CLI, interpreter start included);
- wxtiles decode + ``build_cog`` alone (``read_field`` then ``build_cog``, no sidecar,
  motion or publish), with in-process times of each step;
- GDAL, two steps: ``gdalwarp`` to EPSG:3857 on the GoogleMapsCompatible grid at the
  COG's zoom (``-tr`` of that zoom, ``-tap``), then ``gdal_translate -of COG``;
- GDAL, the COG driver alone: ``gdal_translate -of COG -co TILING_SCHEME=GoogleMapsCompatible``
  (the reprojection and COG in one step, what ``ingest/cog.py`` asks GDAL for);
- the same COG-driver call through rasterio's bundled GDAL (``rasterio.shutil.copy``),
  because Debian's ``gdal-bin`` is an older GDAL than the one wxtiles runs on.

All use nearest resampling, 512-px blocks, ZSTD level 9 with a predictor, all CPUs,
and MRMS's -999 as no data. GDAL keeps the values as float32 (what a GDAL user gets);
wxtiles writes its uint8 codes. Commands are run ``--repeat`` times, in rotating
order; the tables show the median. Not a test: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LAYER = "reflectivity"
TIME_TARGET = 1.5  # wxtiles ingest within 1.5x of GDAL's tools
MEMORY_TARGET = 3.0  # peak memory under 3x the grid's float32 size
COG_OPTIONS = {"BLOCKSIZE": "512", "COMPRESS": "ZSTD", "LEVEL": "9", "PREDICTOR": "YES", "NUM_THREADS": "ALL_CPUS"}

# Runs in its own process: the real pipeline with each step timed (and the peak
# resident set after it), or only decode + build_cog. Prints one JSON line.
STAGES_SCRIPT = r"""
import json, resource, sys, time
from pathlib import Path
began = time.perf_counter()
from ingest import decode, pipeline
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Store
steps = {"import": time.perf_counter() - began}
peaks = {"import": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

def timed(name, function):
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            steps[name] = steps.get(name, 0.0) + time.perf_counter() - began
            peaks[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return wrapper

def timed_fields(read_fields):
    # The decoder yields one field per time step: time each step, holding no
    # reference to a field while the pipeline works on it.
    def wrapper(*args, **kwargs):
        fields = read_fields(*args, **kwargs)
        while True:
            began = time.perf_counter()
            ready = [next(fields, None)]
            steps["decode (read_fields)"] = steps.get("decode (read_fields)", 0.0) + time.perf_counter() - began
            peaks["decode (read_fields)"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            if ready[0] is None:
                return
            yield ready.pop()
    return wrapper

mode, source, store_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
layer = LAYERS["reflectivity"]
if mode == "cog":
    field = timed("decode (read_fields)", decode.read_field)(source, layer)
    timed("warp + COG (build_cog)", pipeline.build_cog)(field, layer, Path(store_path) / "alone.tif")
else:
    pipeline.read_fields = timed_fields(pipeline.read_fields)
    for name, label in (("build_cog", "warp + COG (build_cog)"),
                        ("_series", "series sidecar"), ("_motion", "motion estimation"),
                        ("_latest_motion", "latest-motion check")):
        if hasattr(pipeline, name):
            setattr(pipeline, name, timed(label, getattr(pipeline, name)))
    Store.publish = timed("publish", Store.publish)
    Store.prune = timed("prune", Store.prune)
    report = pipeline.ingest_files(Store(open_storage(store_path)), [source], layer, progress=False)
    if report.failed:
        raise SystemExit(str(report.failed))
steps["total in process"] = time.perf_counter() - began
print(json.dumps({"steps": steps, "peaks": peaks}))
"""

# The COG driver through rasterio's GDAL: gdal_translate -of COG, without the CLI.
RASTERIO_COG_SCRIPT = r"""
import sys, rasterio, rasterio.shutil
options = dict(arg.split("=", 1) for arg in sys.argv[3:])
with rasterio.open(sys.argv[1]) as src:
    rasterio.shutil.copy(src, sys.argv[2], driver="COG", **options)
"""


@dataclass
class Measure:
    wall_s: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    steps: list[dict[str, float]] = field(default_factory=list)
    peaks: list[dict[str, float]] = field(default_factory=list)
    out_bytes: int = 0

    @property
    def wall(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def peak(self) -> float:
        return statistics.median(self.peak_mb)


def timed_run(commands: list[list[str]], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run commands one after the other under GNU time: summed wall seconds, largest peak RSS (MB), last stdout."""
    wall = peak = 0.0
    stdout = ""
    for command in commands:
        done = subprocess.run(["/usr/bin/time", "-v", *command], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        stdout = done.stdout
        elapsed = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
        assert elapsed and rss, done.stderr
        hours, minutes, seconds = elapsed.groups()
        wall += int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        peak = max(peak, int(rss.group(1)) / 1024)
    return wall, peak, stdout


def gdal_version() -> str:
    return subprocess.run(["gdalinfo", "--version"], capture_output=True, text=True).stdout.strip().split(",")[0]


def zoom_resolution(cog: Path) -> tuple[float, int]:
    """The pixel size and zoom of wxtiles' COG, so GDAL's two-step warp lands on the same grid."""
    import rasterio

    from tileserver.core import grid

    with rasterio.open(cog) as dataset:
        zoom = grid.zoom_for(dataset.res[0])
    return grid.resolution(zoom), zoom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (median reported)")
    parser.add_argument("--quick", action="store_true", help="one run of each")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temporary folder)")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 1
    for tool in ("gdalwarp", "gdal_translate", "gdalinfo"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: apt-get install -y gdal-bin")
    if not Path("/usr/bin/time").exists():
        raise SystemExit("/usr/bin/time not found: apt-get install -y time")

    from ingest.demo import samples, synthetic
    from tileserver.core.timeutil import utcnow

    import rasterio

    env = {key: value for key, value in os.environ.items() if not key.startswith("WXTILES_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    wxtiles = [sys.executable, "-m", "tileserver.cli"]

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        end = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=10)
        end -= timedelta(minutes=end.minute % 5)
        files = []
        for valid, dbz in synthetic.radar_sequence(end - timedelta(minutes=5), steps=2):
            files.append(samples.write_mrms_grib2(folder / samples.mrms_filename("MergedReflectivityQCComposite", "00.50", valid), dbz, valid))
        grid_mb = dbz.size * 4 / 2**20
        rows, cols = dbz.shape
        del dbz
        previous, source = files
        base = folder / "base-store"
        subprocess.run([*wxtiles, "ingest", str(previous), "--layer", LAYER, "--quiet"], env={**env, "WXTILES_STORE": str(base)}, check=True)
        cog = next(p for p in base.rglob("*.tif") if not p.name.endswith(".motion.tif"))
        resolution, zoom = zoom_resolution(cog)
        print(f"grid {cols}x{rows} float32 = {grid_mb:.0f} MB; source {source.name} ({source.stat().st_size / 1e6:.2f} MB); "
              f"COG zoom {zoom}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        print(f"GDAL tools: {gdal_version()}; wxtiles and rasterio: GDAL {rasterio.__gdal_version__}")

        # The rasterio run reads the same grid through a VRT that sets nodata -999 (as -a_nodata
        # does on the command line) over the gunzipped file.
        plain = source.with_suffix("")
        with open(plain, "wb") as out:
            subprocess.run(["gzip", "-dc", str(source)], stdout=out, check=True)
        vrt = plain.with_suffix(".vrt")
        subprocess.run(["gdal_translate", "-q", "-of", "VRT", "-a_nodata", "-999", str(plain), str(vrt)], check=True)
        gdal_input = f"/vsigzip/{source}"
        creation = [arg for key, value in COG_OPTIONS.items() for arg in ("-co", f"{key}={value}")]
        cases = {
            "wxtiles ingest (CLI, whole pipeline)": None,
            "wxtiles decode + build_cog alone": None,
            "GDAL: gdalwarp + gdal_translate -of COG": lambda out: [
                ["gdalwarp", "-q", "-overwrite", "-t_srs", "EPSG:3857", "-tr", repr(resolution), repr(resolution), "-tap",
                 "-r", "near", "-srcnodata", "-999", "-dstnodata", "-999", "-multi", "-wo", "NUM_THREADS=ALL_CPUS",
                 "-co", "TILED=YES", "-co", "BLOCKXSIZE=512", "-co", "BLOCKYSIZE=512", gdal_input, str(out.with_suffix(".warped.tif"))],
                ["gdal_translate", "-q", "-of", "COG", *creation, "-co", "RESAMPLING=NEAREST", "-co", "SPARSE_OK=TRUE",
                 str(out.with_suffix(".warped.tif")), str(out)],
            ],
            "GDAL: gdal_translate -of COG (TILING_SCHEME)": lambda out: [
                ["gdal_translate", "-q", "-of", "COG", "-a_nodata", "-999", *creation, "-co", "TILING_SCHEME=GoogleMapsCompatible",
                 "-co", "ZOOM_LEVEL_STRATEGY=AUTO", "-co", "WARP_RESAMPLING=NEAREST", "-co", "OVERVIEW_RESAMPLING=NEAREST",
                 "-co", "SPARSE_OK=TRUE", gdal_input, str(out)],
            ],
        }
        cases[f"GDAL {rasterio.__gdal_version__} COG driver via rasterio"] = lambda out: [
            [sys.executable, "-c", RASTERIO_COG_SCRIPT, str(vrt), str(out),
             *(f"{k}={v}" for k, v in {**COG_OPTIONS, "TILING_SCHEME": "GoogleMapsCompatible", "ZOOM_LEVEL_STRATEGY": "AUTO",
                                         "WARP_RESAMPLING": "NEAREST", "OVERVIEW_RESAMPLING": "NEAREST", "SPARSE_OK": "TRUE"}.items())],
        ]
        results = {name: Measure() for name in cases}
        names = list(cases)
        for repeat in range(args.repeat):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                work = folder / f"run-{repeat}"
                shutil.rmtree(work, ignore_errors=True)
                shutil.copytree(base, work / "store")
                measure = results[name]
                if name.startswith("wxtiles ingest"):
                    wall, peak, _ = timed_run([[*wxtiles, "ingest", str(source), "--layer", LAYER, "--quiet"]], {**env, "WXTILES_STORE": str(work / "store")})
                    copy = work / "stages-store"
                    shutil.copytree(base, copy)
                    _, _, stdout = timed_run([[sys.executable, "-c", STAGES_SCRIPT, "ingest", str(source), str(copy)]], env)
                    stamp = re.search(r"(\d{8})-(\d{6})", source.name)
                    assert stamp
                    published = list((work / "store").rglob(f"{stamp[1]}T{stamp[2]}Z-*[0-9a-f].tif"))
                    measure.out_bytes = published[0].stat().st_size if published else 0
                elif name.startswith("wxtiles decode"):
                    wall, peak, stdout = timed_run([[sys.executable, "-c", STAGES_SCRIPT, "cog", str(source), str(work)]], env)
                    measure.out_bytes = (work / "alone.tif").stat().st_size
                else:
                    out = work / "gdal.tif"
                    wall, peak, stdout = timed_run(cases[name](out))
                    measure.out_bytes = out.stat().st_size
                    stdout = ""
                measure.wall_s.append(wall)
                measure.peak_mb.append(peak)
                if stdout.strip():
                    found = json.loads(stdout.strip().splitlines()[-1])
                    measure.steps.append(found["steps"])
                    measure.peaks.append(found["peaks"])
                print(f"  run {repeat + 1}: {name:<46} {wall:6.2f} s  peak {peak:5.0f} MB")
                shutil.rmtree(work, ignore_errors=True)

        report(results, grid_mb, args.repeat)


def report(results: dict[str, Measure], grid_mb: float, repeat: int) -> None:
    names = list(results)
    wx_cli, wx_cog, gdal_two, gdal_cog, rio_cog = (results[n] for n in names)
    print()
    print(f"Medians of {repeat} run(s); ratios are wxtiles / GDAL")
    print()
    print("| command | wall s | peak MB | peak / float32 grid | output MB |")
    print("|---|---|---|---|---|")
    for name, m in results.items():
        print(f"| {name} | {m.wall:.2f} | {m.peak:.0f} | {m.peak / grid_mb:.1f}x | {m.out_bytes / 1e6:.2f} |")
    print()
    print("| wxtiles / GDAL | time: ingest CLI | time: decode + build_cog | peak: ingest CLI | peak: decode + build_cog |")
    print("|---|---|---|---|---|")
    for name, gdal in ((names[2], gdal_two), (names[3], gdal_cog), (names[4], rio_cog)):
        print(f"| {name} | {wx_cli.wall / gdal.wall:.2f} | {wx_cog.wall / gdal.wall:.2f} | {wx_cli.peak / gdal.peak:.2f} | {wx_cog.peak / gdal.peak:.2f} |")
    for label, m in (("wxtiles ingest, in process", wx_cli), ("decode + build_cog, in process", wx_cog)):
        if m.steps:
            keys = list(m.steps[0])
            print()
            print(f"{label} (median s; peak resident MB once the step is done):")
            for key in keys:
                seconds = statistics.median(s.get(key, 0.0) for s in m.steps)
                peak = statistics.median(p.get(key, 0.0) for p in m.peaks) if key in m.peaks[0] else None
                print(f"  {key:<28} {seconds:6.2f} s" + (f"   peak {peak:5.0f} MB" if peak else ""))
    print()
    print("Targets")
    best_gdal = min(gdal_two.wall, gdal_cog.wall)
    ratio = wx_cli.wall / best_gdal
    print(f"- time: wxtiles ingest {wx_cli.wall:.2f} s against GDAL's tools' best {best_gdal:.2f} s = {ratio:.2f}x "
          f"(target <= {TIME_TARGET}x): {'met' if ratio <= TIME_TARGET else 'MISSED'}; decode + build_cog alone "
          f"{wx_cog.wall / best_gdal:.2f}x: {'met' if wx_cog.wall / best_gdal <= TIME_TARGET else 'MISSED'}")
    limit = MEMORY_TARGET * grid_mb
    print(f"- memory: wxtiles ingest peak {wx_cli.peak:.0f} MB (target < {limit:.0f} MB = {MEMORY_TARGET:g}x the float32 grid): "
          f"{'met' if wx_cli.peak < limit else 'MISSED'}; GDAL's tools peak {min(gdal_two.peak, gdal_cog.peak):.0f} MB")


if __name__ == "__main__":
    main()
