"""Our COG tile reader against rio-tiler's, side by side on the same pooled dataset.

One real MRMS ``PrecipRate`` file of ``../shared/data/mrms-20190610`` goes through
``wxtiles ingest --layer precip-rate`` into a temporary store. Its COG is opened
once through ``tileserver.core.reader.DatasetPool`` (as ``TileService`` borrows it) and
every tile is read from that one handle by:

* **ours**: ``tileserver.core.reader.read_tile(dataset, tile, size)``, what the server calls;
* **rio-tiler Reader**: ``rio_tiler.io.Reader(None, dataset=dataset).tile(x, y, z,
  tilesize=size)``, the Reader made per tile, as a pooled handle would be wrapped
  per request;
* **rio-tiler part**: ``rio_tiler.reader.part(dataset, xy_bounds, height=size,
  width=size, dst_crs=dataset.crs)``, the lowest-level function doing the same
  job (no Reader, no tile-exists test, no WarpedVRT: the COG is already EPSG:3857).

Tiles: every tile over the frame at zoom 3, and a seeded sample of the tiles over
the frame at the other zooms (the frame's native zoom is 7, so 9 and 11 are
overzoom). Tiles outside the frame are left out: the service never reads them.
One untimed pass warms GDAL's block cache and the page cache, then each tile is
read ``--rounds`` times by each reader (more at zoom 3, whose 4 tiles would give
too few timings for a 95th percentile), the readers' order rotating per tile.

Agreement, per zoom: pixels where ours and rio-tiler disagree on "no data"
(ours: the dataset's nodata value; rio-tiler: its mask), and the largest absolute
difference of the stored codes where both have data. Both read nearest-neighbour.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import mercantile
import numpy as np
import rasterio
from rio_tiler import reader as rio_reader
from rio_tiler.io import Reader

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.radar_skill import LAYER, MRMS_DIR, ingest  # noqa: E402
from tileserver.core.reader import DatasetPool, read_tile  # noqa: E402
from tileserver.store.storage import open_storage  # noqa: E402
from tileserver.store import Store  # noqa: E402

MIN_TIMINGS = 200  # per reader and zoom

Read = Callable[[rasterio.DatasetReader, mercantile.Tile, int], np.ndarray]


def rio_tiler_reader(dataset: rasterio.DatasetReader, tile: mercantile.Tile, size: int) -> np.ma.MaskedArray:
    return Reader(None, dataset=dataset).tile(tile.x, tile.y, tile.z, tilesize=size).array[0]


def rio_tiler_part(dataset: rasterio.DatasetReader, tile: mercantile.Tile, size: int) -> np.ma.MaskedArray:
    bounds = mercantile.xy_bounds(tile)
    return rio_reader.part(dataset, bounds, height=size, width=size, dst_crs=dataset.crs).array[0]


# Each as its library returns it: ours the codes with nodata filled in (what the
# renderers take), rio-tiler a masked array.
READERS: dict[str, Read] = {"ours": read_tile, "rio-tiler Reader": rio_tiler_reader, "rio-tiler part": rio_tiler_part}


def frame_tiles(bounds: tuple[float, float, float, float], zoom: int, count: int, seed: int) -> list[mercantile.Tile]:
    """All tiles over ``bounds`` at ``zoom``, or a seeded sample of ``count`` of them."""
    tiles = list(mercantile.tiles(*bounds, zoom))
    if len(tiles) <= count:
        return tiles
    return random.Random(seed + zoom).sample(tiles, count)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def compare(codes: np.ndarray, nodata: float, other: np.ma.MaskedArray) -> tuple[int, int, int]:
    """Against our ``codes``: (pixels whose no-data status differs, pixels with data in both, max abs code difference there)."""
    ref_mask, other_mask = codes == nodata, np.ma.getmaskarray(other)
    both = ~ref_mask & ~other_mask
    diff = np.abs(codes[both].astype(np.int64) - other.data[both].astype(np.int64))
    return int((ref_mask != other_mask).sum()), int(both.sum()), int(diff.max()) if diff.size else 0


def run(source: Path, zooms: list[int], count: int, rounds: int, size: int, seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="wxtiles-reader-bench-") as folder:
        store_dir = os.path.join(folder, "store")
        seconds = ingest(store_dir, [source])
        store = Store(open_storage(store_dir, create=True))
        (frame,) = store.load_catalog(LAYER).frames
        path = store.storage.gdal_path(frame.key)
        print(f"ingested {source.name} in {seconds:.1f} s: {frame.key}, native zoom {frame.native_zoom}")
        pool = DatasetPool()
        with pool.open(path) as dataset:
            print(f"{dataset.width}x{dataset.height} {dataset.dtypes[0]}, nodata {dataset.nodata:g}, "
                  f"overviews {dataset.overviews(1)}, blocks {dataset.block_shapes[0]}")
            print(f"rio-tiler's WebMercatorQuad CRS equals the COG's: {Reader(None, dataset=dataset).tms.rasterio_crs == dataset.crs}")
            print(f"{rounds} timed reads per tile and reader (at least {MIN_TIMINGS} per zoom) after one warm-up pass; "
                  f"{size}-px tiles\n")
            header = (f"{'zoom':>4} {'tiles':>5}  " + "  ".join(f"{name + ' p50/p95 ms':>30}" for name in READERS)
                      + f"  {'Reader/ours':>11} {'part/ours':>9}")
            print(header)
            agreement: list[str] = []
            for zoom in zooms:
                tiles = frame_tiles(tuple(frame.bounds), zoom, count, seed)
                arrays = {name: [read(dataset, t, size) for t in tiles] for name, read in READERS.items()}  # warm-up
                for name, read in READERS.items():
                    if name == "ours":
                        continue
                    cells = [compare(a, dataset.nodata, b) for a, b in zip(arrays["ours"], arrays[name], strict=True)]
                    agreement.append(
                        f"z{zoom:<2} {name:<17} nodata differs on {sum(c[0] for c in cells):,} px, "
                        f"valid in both {sum(c[1] for c in cells):,} px, max abs code difference {max(c[2] for c in cells)}"
                    )
                ms: dict[str, list[float]] = {name: [] for name in READERS}
                order = list(READERS.items())
                for _ in range(max(rounds, -(-MIN_TIMINGS // len(tiles)))):
                    for i, tile in enumerate(tiles):
                        for name, read in order[i % len(order):] + order[: i % len(order)]:
                            began = time.perf_counter()
                            read(dataset, tile, size)
                            ms[name].append((time.perf_counter() - began) * 1000)
                medians = {name: statistics.median(v) for name, v in ms.items()}
                cells = "  ".join(f"{medians[n]:>14.3f} / {percentile(v, 0.95):<13.3f}" for n, v in ms.items())
                print(f"{zoom:>4} {len(tiles):>5}  {cells}  {medians['rio-tiler Reader'] / medians['ours']:>11.2f} "
                      f"{medians['rio-tiler part'] / medians['ours']:>9.2f}")
            print("\nagreement with ours (same tiles, same handle):")
            print("\n".join(agreement))
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, default=MRMS_DIR / "PrecipRate_00.00_20190610-003000.grib2")
    parser.add_argument("--zooms", default="3,6,9,11", help="comma-separated (the frame's native zoom is 7)")
    parser.add_argument("--tiles", type=int, default=300, help="tiles per zoom (all of them if fewer)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    run(args.file, [int(z) for z in args.zooms.split(",")], args.tiles, args.rounds, args.size, args.seed)


if __name__ == "__main__":
    main()
