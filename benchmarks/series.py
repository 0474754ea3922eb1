"""Point time series over 48 hours of 5-minute frames (576), local and S3 stores.

Run by hand: ``.venv/bin/python benchmarks/series.py [--frames 576] [--queries 40]``.
Ingests one continental-US synthetic frame through the real pipeline, then lays
out ``--frames`` copies of it (COG and series sidecar) under 5-minute time keys
with their catalog, in a local store and in an S3 store on a loopback
``moto_server``. For each store it starts ``wxtiles serve`` and asks
``/api/layers/reflectivity/series`` at random points: the first query of a fresh
server process (cold) and repeated queries (warm). Prints p50/p90 in ms against
the targets (local p50 < 200 ms; S3 cold < 1 s). Not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import free_port, wxtiles_serving  # noqa: E402
from ingest.demo import samples, synthetic  # noqa: E402
from ingest.pipeline import ingest_file  # noqa: E402
from tileserver.core.layers import LAYERS  # noqa: E402
from tileserver.store.storage import open_storage  # noqa: E402
from tileserver.store import Catalog, Store, catalog_key, frame_key, series_key  # noqa: E402
from tileserver.core.timeutil import utcnow  # noqa: E402

RADAR = LAYERS["reflectivity"]


def build(folder: Path, frames: int) -> Path:
    """A local store with ``frames`` frames: one real ingest, then copies under new times."""
    store = Store(open_storage(str(folder / "local"), create=True))
    end = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=10)
    start = end - timedelta(minutes=5 * (frames - 1))
    _, dbz = next(synthetic.radar_sequence(start, steps=1))
    source = folder / samples.mrms_filename("MergedReflectivityQCComposite", "00.50", start)
    samples.write_mrms_grib2(source, dbz, start)
    first = ingest_file(store, source, RADAR).frame
    cog = Path(store.storage.gdal_path(first.key))
    sidecar = Path(store.storage.gdal_path(first.series))
    catalog = Catalog("reflectivity", (first,))
    for i in range(1, frames):
        when = start + timedelta(minutes=5 * i)
        digest = f"{i:012d}" + first.digest[12:]
        key = frame_key(RADAR, when, None, digest)
        for src, dst in ((cog, key), (sidecar, series_key(key))):
            target = Path(store.storage.gdal_path(dst))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(src, target) if not target.exists() else None
        catalog = catalog.with_frame(replace(first, time=when, key=key, digest=digest, series=series_key(key), motion=None))
    store.storage.write_bytes(catalog_key("reflectivity"), catalog.to_bytes())
    began = time.perf_counter()
    store.prune("reflectivity")  # rolls complete hours into series packs, as after every ingest
    packs = store.load_catalog("reflectivity").packs
    print(f"{len(packs)} hour packs written in {time.perf_counter() - began:.1f} s")
    return folder / "local"


def upload(local: Path, bucket: str, endpoint: str) -> None:
    import boto3
    from boto3.s3.transfer import TransferConfig

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=bucket)
    paths = [p for p in local.rglob("*") if p.is_file() and ".tmp" not in p.parts and ".locks" not in p.parts]
    from concurrent.futures import ThreadPoolExecutor

    def put(path: Path) -> None:
        client.upload_file(str(path), bucket, f"frames/{path.relative_to(local).as_posix()}", Config=TransferConfig(max_concurrency=2))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, paths))


def points(count: int, seed: int = 3) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [(rng.uniform(-120, -75), rng.uniform(27, 48)) for _ in range(count)]


def query(url: str, lon: float, lat: float, frames: int) -> float:
    began = time.perf_counter()
    response = httpx.get(f"{url}/api/layers/reflectivity/series", params={"lon": lon, "lat": lat}, timeout=60)
    elapsed = (time.perf_counter() - began) * 1000
    body = response.json()
    observed = [v for v in body["values"] if v["kind"] == "observed"]
    if len(observed) != frames:
        raise SystemExit(f"expected {frames} observed values, got {len(observed)}")
    return elapsed


def run(name: str, store: str, env: dict[str, str], frames: int, count: int) -> dict[str, float]:
    cold = []
    for lon, lat in points(3, seed=11):
        with wxtiles_serving(store, env) as (_, url):
            cold.append(query(url, lon, lat, frames))
    with wxtiles_serving(store, env) as (_, url):
        spread = [query(url, lon, lat, frames) for lon, lat in points(count)]
        warm = [query(url, lon, lat, frames) for lon, lat in points(count)]
    out = {
        "cold (fresh process) median": statistics.median(cold),
        "new points p50": statistics.median(spread),
        "new points p90": sorted(spread)[int(0.9 * len(spread))],
        "same points again p50": statistics.median(warm),
    }
    for label, value in out.items():
        print(f"{name:<6} {label:<30} {value:8.1f} ms")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=576)
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        local = build(folder, args.frames)
        print(f"{args.frames} frames laid out")
        local_result = run("local", str(local), {}, args.frames, args.queries)
        moto = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
        port = free_port()
        server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}
        os.environ.update(creds)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            upload(local, "series-bench", endpoint)
            s3_result = run("s3", "s3://series-bench/frames", creds, args.frames, args.queries)
        finally:
            server.terminate()
        print()
        print(f"local p50 {local_result['new points p50']:.0f} ms (target < 200 ms): {'met' if local_result['new points p50'] < 200 else 'MISSED'}")
        print(f"s3 cold {s3_result['cold (fresh process) median']:.0f} ms (target < 1000 ms): {'met' if s3_result['cold (fresh process) median'] < 1000 else 'MISSED'}")


if __name__ == "__main__":
    main()
