"""Real files from weather services, ingested and served: how faithfully, and how fast.

For every real file in ../shared/data (see tests/ingest/real_cases.py): ingest it
with `wxtiles ingest` into a fresh store (timed, as a user runs it), serve it,
and sample it through /point and .npy tiles against its truth, read apart from
wxtiles (tests/ingest/fidelity.py). Files that must be refused are tried too.
Prints a Markdown table for the README.

    .venv/bin/python benchmarks/real_files.py [--points 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import LiveServer  # noqa: E402
from tests.ingest.fidelity import measure  # noqa: E402
from tests.ingest.real_cases import CASES, REDUCED  # noqa: E402
from tileserver.core.settings import Settings  # noqa: E402

REFUSED = [(REDUCED, "wind-speed-10m")]


def ingest(path: str, layer: str, store: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tileserver.cli", "ingest", path, "--layer", layer, "--quiet"],
        capture_output=True, text=True, env={**os.environ, "WXTILES_STORE": store},
    )
    return time.perf_counter() - started, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=300, help="cells sampled per frame")
    args = parser.parse_args()
    print("| file | layer | frames | points | match | median / max error | interpolation error, median / max | coverage | ingest |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in CASES:
        with tempfile.TemporaryDirectory() as store:
            seconds, done = ingest(case.path, case.layer, store)
            if done.returncode != 0:
                print(f"| {case.name} | {case.layer} | ingest failed: {done.stderr.strip()} |||||||")
                continue
            with LiveServer(Settings(store=store, catalog_ttl_s=0.0)) as server:
                result = measure(case, server.url, points_per_frame=args.points)
        coverage = "agrees" if result.holes == result.spurious == 0 else f"{result.holes} holes, {result.spurious} spurious"
        print(
            f"| {case.name} | `{case.layer}` | {result.frames} | {result.points} | {100 * result.fraction:.1f} % "
            f"| {result.median_error:.3g} / {result.max_error:.3g} "
            f"| {result.median_interpolation_error:.3g} / {result.max_interpolation_error:.3g} | {coverage} | {seconds:.2f} s |"
        )
    for path, layer in REFUSED:
        with tempfile.TemporaryDirectory() as store:
            seconds, done = ingest(str(path), layer, store)
        reason = done.stderr.strip().splitlines()[0].split(": ", 1)[1] if done.returncode else "NOT REFUSED"
        print(f"| {path.name} | `{layer}` | refused: {reason.split(';')[0]} ||||||| {seconds:.2f} s |")


if __name__ == "__main__":
    main()
