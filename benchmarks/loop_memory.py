"""Resident memory of one `wxtiles serve` worker under concurrent maximum-size loops.

Ingests the last N real MRMS PrecipRate files of ../shared/data/mrms-20190610,
starts `wxtiles serve`, sends `--concurrent` loops of 1600 x 900 px over the CONUS
(27 frames with the default 4 observed, 38.9 megapixels: the largest the limits
allow) at once, and samples the worker's VmRSS from /proc every 20 ms.

    .venv/bin/python benchmarks/loop_memory.py --format png --concurrent 8
    .venv/bin/python benchmarks/loop_memory.py --budget-mp 1000   # effectively no budget
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from benchmarks.servers import wxtiles_serving
from ingest.pipeline import ingest_file
from tileserver.core.layers import LAYERS
from tileserver.store.storage import open_storage
from tileserver.store import Store

MRMS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mrms-20190610"
BBOX = "-125,24,-66,50"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def loop_query(observed: int, index: int) -> dict[str, str]:
    """The largest loop the limits allow: 1600 x 900 px, ``observed`` + nowcast frames = 27.
    A distinct ``delay`` per index: distinct loops, none answered from another's cache entry."""
    return {"bbox": BBOX, "width": "1600", "frames": str(observed), "nowcast": str(5 * (27 - observed)),
            "outlines": "1", "delay": str(100 + index)}


def concurrent_loops(url: str, pid: int, formats: list[str], observed: int) -> tuple[float, list[httpx.Response]]:
    """One maximum loop per entry of ``formats``, all at once: the worker's peak RSS (MB) and the answers."""
    peak = rss_mb(pid)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.02)

    answers: list[httpx.Response] = []

    def ask(index: int) -> None:
        answers.append(httpx.get(f"{url}/loops/precip-rate.{formats[index]}", params=loop_query(observed, index), timeout=600))

    sampler = threading.Thread(target=sample)
    sampler.start()
    clients = [threading.Thread(target=ask, args=(index,)) for index in range(len(formats))]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    done.set()
    sampler.join()
    return peak, answers


def ingest_mrms(store: Store, count: int) -> None:
    files = sorted(MRMS.glob("PrecipRate_00.00_*.grib2"))[-count:]
    if len(files) < count:
        raise FileNotFoundError(f"need {count} PrecipRate files in {MRMS}")
    for path in files:
        ingest_file(store, path, LAYERS["precip-rate"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=["webp", "gif", "png"], default="webp")
    parser.add_argument("--concurrent", type=int, default=8)
    parser.add_argument("--observed", type=int, default=4, help="real frames ingested and looped over")
    parser.add_argument("--budget-mp", type=float, help="WXTILES_RENDER_BUDGET_MP (default: the server's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store(open_storage(str(Path(folder) / "store"), create=True))
        ingest_mrms(store, args.observed)
        env = {"WXTILES_LOG_LEVEL": "warning"}
        if args.budget_mp:
            env["WXTILES_RENDER_BUDGET_MP"] = str(args.budget_mp)
        with wxtiles_serving(store.storage.url, env) as (process, url):
            start = rss_mb(process.pid)
            began = time.perf_counter()
            peak, answers = concurrent_loops(url, process.pid, [args.format] * args.concurrent, args.observed)
    statuses = Counter(answer.status_code for answer in answers)
    print(f"{args.concurrent} x {args.format} 1600x900x27: worker RSS {start:.0f} MB at start, peak {peak:.0f} MB; "
          f"statuses {dict(statuses)}; {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
