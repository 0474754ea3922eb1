"""What keeping catalogs fresh costs a pod, and what publishing one frame costs ingest.

A store with 1,440 frames in each of 5 layers (48 h of 2-minute frames), on a
local folder and on S3 (moto_server on loopback, if installed). A pod re-reads
each catalog every ``WXTILES_CATALOG_TTL_S`` (2 s): 150 catalog refreshes a
minute. Two ways of refreshing, both in today's code:

- **read whole**: ``Store.load_catalog`` (GET and parse the JSON), what every
  refresh did before conditional reads;
- **conditional**: ``Catalogs.catalog`` as the server runs it (a conditional
  GET, parsed only when the catalog changed).

Two scenarios: nothing changes, and one new frame in every layer every 2
minutes. Then the time to publish one frame into a 1,440-frame catalog.

    .venv/bin/python benchmarks/catalog_refresh.py [--minutes 2] [--no-s3] [--publish-only]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.servers import free_port  # noqa: E402
from tileserver.core.layers import LAYERS  # noqa: E402
from tileserver.service import TileService  # noqa: E402
from tileserver.core.settings import Settings  # noqa: E402
from tileserver.store.storage import Storage, open_storage  # noqa: E402
from tileserver.store import Catalog, Frame, Store, catalog_key, frame_key, motion_key, series_key  # noqa: E402

FRAMES = 1440
TTL_S = 2.0
REFRESHES_PER_MINUTE = round(60 / TTL_S) * len(LAYERS)
START = datetime(2026, 11, 26, 0, 0, tzinfo=timezone.utc)


class Metered:
    """The storage, counting the bytes its catalog reads bring back."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.bytes = 0
        self.requests = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.storage, name)

    def read_bytes(self, key: str) -> bytes:
        data = self.storage.read_bytes(key)
        self.requests += 1
        self.bytes += len(data)
        return data

    def read_if_changed(self, key: str, version: str | None) -> tuple[bytes, str] | None:
        result = self.storage.read_if_changed(key, version)
        self.requests += 1
        self.bytes += len(result[0]) if result else 0
        return result


def frame(layer_id: str, index: int) -> Frame:
    """A catalog entry as ingest writes it (key, digest, bounds, motion, sidecar, grid)."""
    layer = LAYERS[layer_id]
    run = None
    time = START + timedelta(minutes=2 * index)
    if layer.kind == "forecast":  # 30 runs of 48 hourly frames
        run = START + timedelta(hours=6 * (index // 48))
        time = run + timedelta(hours=index % 48)
    digest = hashlib.sha256(f"{layer_id}{index}".encode()).hexdigest()
    key = frame_key(layer, time, run, digest)
    return Frame(
        layer=layer_id, time=time, run=run, key=key, digest=digest, bounds=(-129.995, 20.005, -60.005, 54.995),
        native_zoom=7, size=2_813_442, source=f"MRMS_MergedReflectivityQCComposite_00.50_{time:%Y%m%d-%H%M%S}.grib2.gz",
        ingested=time + timedelta(seconds=41), motion=motion_key(key) if layer.nowcast else None,
        series=series_key(key), grid=(-14471533.80, 7361866.11, 611.50, 12640, 7392), ingest_seconds=3.912,
    )


def fill(storage: Storage) -> dict[str, int]:
    sizes = {}
    for layer_id in LAYERS:
        body = Catalog(layer_id, tuple(frame(layer_id, i) for i in range(FRAMES)), START).to_bytes()
        storage.write_bytes(catalog_key(layer_id), body)
        sizes[layer_id] = len(body)
    return sizes


def arrive(storage: Storage, count: int) -> None:
    """One new frame in every layer, written as ingest writes it (read, add, compare-and-swap)."""
    store = Store(storage)
    for layer_id in LAYERS:
        store._update_catalog(layer_id, lambda catalog, layer_id=layer_id: catalog.with_frame(frame(layer_id, FRAMES + count)))


def refresh_cost(storage: Storage, refresh: Callable[[Storage, str], object], minutes: int, arrivals: bool) -> dict[str, float]:
    """CPU, wall time and bytes of ``minutes`` of refreshes, per minute."""
    metered = Metered(storage)
    storage = metered  # type: ignore[assignment]
    rounds = minutes * round(60 / TTL_S)
    for layer_id in LAYERS:  # a running pod: every catalog read once already
        refresh(storage, layer_id)
    metered.bytes = metered.requests = 0
    cpu = wall = 0.0
    for index in range(rounds):
        if arrivals and index % round(120 / TTL_S) == round(60 / TTL_S):  # one a minute in, then every 2 minutes
            arrive(storage, index)
        started_cpu, started = time.process_time(), time.perf_counter()
        for layer_id in LAYERS:
            refresh(storage, layer_id)
        cpu += time.process_time() - started_cpu
        wall += time.perf_counter() - started
    return {"cpu_s": cpu / minutes, "wall_s": wall / minutes, "mb": metered.bytes / 1e6 / minutes, "requests": metered.requests / minutes}


def whole(storage: Storage, layer_id: str) -> object:
    return Store(storage).load_catalog(layer_id)


def conditional() -> Callable[[Storage, str], object]:
    services: dict[int, TileService] = {}

    def refresh(storage: Storage, layer_id: str) -> object:
        # One service per storage: it remembers versions as a pod does. TTL 0: every call asks the store.
        service = services.get(id(storage))
        if service is None:
            service = services[id(storage)] = TileService(Store(storage), Settings(store=storage.url, catalog_ttl_s=0.0))
        return service.catalogs.catalog(layer_id)

    return refresh


def publish_seconds(storage: Storage, folder: Path, repeats: int = 5) -> list[float]:
    """Store.publish of one frame (a 3 MB file, its sidecar) into a 1,440-frame catalog."""
    layer = LAYERS["reflectivity"]
    cog = folder / "frame.tif"
    cog.write_bytes(os.urandom(3 * 2**20))
    sidecar = folder / "frame.series.bin"
    sidecar.write_bytes(os.urandom(200_000))
    store = Store(storage)
    out = []
    for n in range(repeats):
        when = START + timedelta(minutes=2 * (FRAMES + 1000 + n))
        started = time.perf_counter()
        store.publish(layer, cog, time=when, run=None, digest=hashlib.sha256(str(n).encode()).hexdigest(),
                      bounds=(-130, 20, -60, 55), native_zoom=7, source="bench", series=(sidecar, (0, 0, 1, 1, 1)))
        out.append(time.perf_counter() - started)
    return out


@contextmanager
def moto_store() -> Iterator[str | None]:
    executable = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(executable).exists():
        print("moto_server not installed: S3 skipped")
        yield None
        return
    import boto3

    port = free_port()
    process = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        os.environ[key] = value
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="catalogs")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise SystemExit("moto_server did not start") from None
                time.sleep(0.2)
        yield "s3://catalogs/store"
    finally:
        process.terminate()
        process.wait(timeout=10)


def report(name: str, storage: Storage, folder: Path, minutes: int, publish_only: bool) -> None:
    sizes = fill(storage)
    print(f"\n## {name}: {len(sizes)} layers x {FRAMES} frames, catalogs {min(sizes.values()) / 1e6:.2f}-{max(sizes.values()) / 1e6:.2f} MB")
    if not publish_only:
        refresh_table(storage, minutes)
    fill(storage)
    seconds = publish_seconds(storage, folder, repeats=9)
    print(f"publish one frame into a {FRAMES}-frame catalog: median {statistics.median(seconds) * 1000:.0f} ms "
          f"(min {min(seconds) * 1000:.0f}, max {max(seconds) * 1000:.0f}, {len(seconds)} runs)")


def refresh_table(storage: Storage, minutes: int) -> None:
    print(f"{REFRESHES_PER_MINUTE} refreshes per pod per minute (TTL {TTL_S:g} s, {len(LAYERS)} layers); per minute:")
    print(f"{'scenario':<30} {'refresh':<12} {'CPU s':>7} {'wall s':>7} {'MB read':>8} {'requests':>9}")
    for scenario, arrivals in (("nothing changes", False), ("a frame per layer every 2 min", True)):
        for label, refresh in (("read whole", whole), ("conditional", conditional())):
            fill(storage)
            cost = refresh_cost(storage, refresh, minutes, arrivals)
            print(f"{scenario:<30} {label:<12} {cost['cpu_s']:>7.2f} {cost['wall_s']:>7.2f} {cost['mb']:>8.1f} {cost['requests']:>9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=2, help="simulated minutes per measurement, even (default 2)")
    parser.add_argument("--no-s3", action="store_true", help="local folder only")
    parser.add_argument("--publish-only", action="store_true",
                        help="only the publish time (runs on code without conditional reads, to measure it before them)")
    args = parser.parse_args()
    if args.minutes < 2 or args.minutes % 2:
        parser.error("--minutes must be an even number: frames arrive every 2 minutes")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        report("local folder", open_storage(str(folder / "store"), create=True), folder, args.minutes, args.publish_only)
        if not args.no_s3:
            with moto_store() as url:
                if url:
                    report("S3 (moto_server on loopback)", open_storage(url), folder, args.minutes, args.publish_only)


if __name__ == "__main__":
    main()
