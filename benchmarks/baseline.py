"""This tree against an earlier commit, side by side: ingest, cold and cached tiles, point series.

For changes that must not change speed (a refactor, a dependency bump). Both
trees run in the same venv, alternating round by round so load from other jobs
falls on both alike:

- **ingest**: ``wxtiles ingest --layer precip-rate`` of real MRMS files
  (``../shared/data/mrms-20190610``), each tree into a store of its own;
- **cold tiles**: ``wxtiles serve`` on that store, distinct z3-z10 tiles over the
  CONUS, each fetched once (PNG of the latest frame, then its +30 min nowcast);
- **cached tiles**: the same URLs again (the tile LRU answers);
- **series**: ``/api/layers/precip-rate/series`` at random points.

    .venv/bin/python benchmarks/baseline.py --baseline 87c72a1 [--files 6] [--tiles 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.nowcast_tiles import export, measure, tile_list  # noqa: E402
from benchmarks.servers import wxtiles_serving  # noqa: E402

MRMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mrms-20190610"
LAYER = "precip-rate"


def ingest(code: Path, store: Path, files: list[Path]) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tileserver.cli", "ingest", "--layer", LAYER, "--quiet", *map(str, files)],
                   cwd=code, env={"PYTHONPATH": str(code), "WXTILES_STORE": str(store), "PATH": "/usr/bin:/bin"}, check=True)
    return (time.perf_counter() - began) / len(files)


def serve_and_measure(code: Path, store: Path, tiles: list, points: list[tuple[float, float]]) -> dict[str, float]:
    with wxtiles_serving(str(store), code=code) as (_, base), httpx.Client(timeout=60) as client:
        info = client.get(f"{base}/api/layers/{LAYER}").json()
        latest = info["latest"]
        nowcast = next(n["time"] for n in info["nowcast"] if n["lead_minutes"] == 30)
        urls = [f"{base}/tiles/{LAYER}/{time}/{t.z}/{t.x}/{t.y}.png" for time in (latest, nowcast) for t in tiles]
        cold = measure(client, urls)
        cached = measure(client, urls)
        series = measure(client, [f"{base}/api/layers/{LAYER}/series?lon={lon:.3f}&lat={lat:.3f}" for lon, lat in points])
    return {"cold tile": statistics.median(cold), "cached tile": statistics.median(cached), "series": statistics.median(series)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="REF", required=True, help="the git commit to compare against")
    parser.add_argument("--files", type=int, default=6, help="MRMS files ingested per round")
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    files = sorted(MRMS.glob("PrecipRate_*.grib2*"))[: args.files]
    if not files:
        raise SystemExit(f"no MRMS PrecipRate files in {MRMS}")
    rng = random.Random(3)
    points = [(rng.uniform(-110, -80), rng.uniform(28, 46)) for _ in range(args.points)]
    results: dict[str, dict[str, list[float]]] = {"this tree": {}, args.baseline: {}}
    with tempfile.TemporaryDirectory(prefix="wxtiles-baseline-") as folder:
        trees = {"this tree": Path(__file__).resolve().parent.parent, args.baseline: export(args.baseline, Path(folder) / "baseline")}
        for round_ in range(args.rounds):
            tiles = tile_list(args.tiles, seed=round_ + 1)
            order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
            for name, code in order:
                store = Path(folder) / f"store-{round_}-{'this' if name == 'this tree' else 'baseline'}"
                seconds = ingest(code, store, files)
                numbers = {"ingest per file (s)": seconds, **{f"{k} (ms)": v for k, v in serve_and_measure(code, store, tiles, points).items()}}
                for key, value in numbers.items():
                    results[name].setdefault(key, []).append(value)
            print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)
    print(f"| median over {args.rounds} rounds | this tree | {args.baseline} | ratio |")
    print("|---|---|---|---|")
    for key in results["this tree"]:
        ours, theirs = statistics.median(results["this tree"][key]), statistics.median(results[args.baseline][key])
        print(f"| {key} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} |")


if __name__ == "__main__":
    main()
