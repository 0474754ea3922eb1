"""Nowcast tile latency against observed tile latency, cold and cached.

Run by hand: ``.venv/bin/python benchmarks/nowcast_tiles.py [--layer precip-rate] [--frames 3] [--tiles 300] [--baseline REF]``.
Makes a continental-US radar store through the real ingest path, so motion fields
are estimated as in production: for ``reflectivity`` (the default) synthetic
MRMS-like frames at 0.01 deg; for ``precip-rate`` the real MRMS ``PrecipRate``
files of ``../shared/data/mrms-20190610`` (the last ``--frames`` * 3 of them, 2
minutes apart, so that motion comes from frames 6 and 12 minutes back); starts
``wxtiles serve`` on loopback, and requests the same shuffled tiles (zoom 3 to 10)
as observed frames and as 30- and 90-minute nowcasts, one at a time: first cold
(cache empty), then cached. Prints p50/p90/p99 and the nowcast/observed ratios.
``--baseline REF`` also serves the same store from git commit REF and measures
both side by side, case by case, so a change is compared within one run.
Not a test: numbers from a shared machine vary; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx
import mercantile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import radar_skill  # noqa: E402
from benchmarks.servers import wxtiles_serving  # noqa: E402
from ingest.demo import samples, synthetic  # noqa: E402
from ingest.pipeline import ingest_file  # noqa: E402
from tileserver.core.layers import LAYERS  # noqa: E402
from tileserver.store.storage import open_storage  # noqa: E402
from tileserver.store import Store  # noqa: E402
from tileserver.core.timeutil import format_utc, utcnow  # noqa: E402


def build_store(folder: Path, frames: int, layer: str) -> Store:
    store = Store(open_storage(str(folder / "store"), create=True))
    if layer == "precip-rate":
        files = sorted(radar_skill.mrms_files(radar_skill.MRMS_DIR).items())[-3 * frames:]
        if not files:
            raise SystemExit(f"no MRMS PrecipRate files in {radar_skill.MRMS_DIR}")
        for _, path in files:
            began = time.perf_counter()
            ingest_file(store, path, LAYERS[layer])
            print(f"ingested {path.name} in {time.perf_counter() - began:.1f} s")
        return store
    end = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=10)
    start = end - timedelta(minutes=5 * (frames - 1))
    for valid, dbz in synthetic.radar_sequence(start, steps=frames):
        path = folder / samples.mrms_filename("MergedReflectivityQCComposite", "00.50", valid)
        samples.write_mrms_grib2(path, dbz, valid)
        began = time.perf_counter()
        ingest_file(store, path, LAYERS[layer])
        print(f"ingested {path.name} in {time.perf_counter() - began:.1f} s (with motion estimation after the first)")
    return store


def tile_list(count: int, seed: int = 1) -> list[mercantile.Tile]:
    rng = random.Random(seed)
    tiles = set()
    while len(tiles) < count:
        tiles.add(mercantile.tile(rng.uniform(-120, -75), rng.uniform(27, 48), rng.randint(3, 10)))
    ordered = sorted(tiles)
    rng.shuffle(ordered)
    return ordered


def measure(client: httpx.Client, urls: list[str]) -> list[float]:
    out = []
    for url in urls:
        began = time.perf_counter()
        response = client.get(url)
        out.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code} {response.text[:200]}")
    return out


def describe(name: str, ms: list[float]) -> tuple[str, float]:
    ms = sorted(ms)
    p50, p90, p99 = (ms[int(len(ms) * q)] for q in (0.5, 0.9, 0.99))
    return f"{name:<28} p50 {p50:7.1f} ms  p90 {p90:7.1f} ms  p99 {p99:7.1f} ms", p50


def export(ref: str, folder: Path) -> Path:
    """The project's source at git ``ref``, unpacked into ``folder``."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", ref], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"git archive {ref}: {archive.stderr.decode().strip()}")
    folder.mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", choices=("reflectivity", "precip-rate"), default="reflectivity")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--tiles", type=int, default=300)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--baseline", metavar="REF", help="also serve the store from this git commit, side by side")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as servers:
        folder = Path(tmp)
        store = build_store(folder, args.frames, args.layer)
        latest = store.load_catalog(args.layer).frames[-1].time
        sources = [(args.baseline, export(args.baseline, folder / "baseline"), None)] if args.baseline else []
        clients = {}
        for label, code, port in [*sources, ("this tree", None, args.port)]:
            _, base = servers.enter_context(wxtiles_serving(store.storage.url, port=port, code=code))
            clients[label] = servers.enter_context(httpx.Client(base_url=base, timeout=60))
        tiles = tile_list(args.tiles)
        cases = {
            "observed": format_utc(latest),
            "nowcast +30 min": format_utc(latest + timedelta(minutes=30)),
            "nowcast +90 min": format_utc(latest + timedelta(minutes=90)),
        }
        results: dict[tuple[str, str, str], float] = {}
        for name, when in cases.items():
            urls = [f"/tiles/{args.layer}/{when}/{t.z}/{t.x}/{t.y}.png" for t in tiles]
            for phase in ("cold", "cached"):
                for label, client in clients.items():
                    line, results[label, name, phase] = describe(f"{name} {phase}", measure(client, urls))
                    print(f"{label:<10} {line}")
        print()
        for label in clients:
            for name in list(cases)[1:]:
                for phase in ("cold", "cached"):
                    ratio = results[label, name, phase] / results[label, "observed", phase]
                    print(f"{label:<10} {name} / observed, {phase}: p50 ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
