"""Live nowcast verification on a real radar sequence: what it scores and what it costs.

Run by hand: ``.venv/bin/python benchmarks/verification.py [--sequence GLOB] [--layer precip-rate]``.

The real MRMS ``PrecipRate`` sequence (``../shared/data/mrms-20190610``, 2-minute
frames) is ingested file by file into a fresh store through the real pipeline,
with the verification step taken out of it and timed on its own right after: so
each row shows the ingest without verification and the verification it adds.
At the end, the scores pooled over the run (``tileserver.core.verification.summary``)
beside the same scoring of Eulerian persistence (the base frame unmoved), so the
numbers have a reference. Not a test: compare the columns of one run.
"""

from __future__ import annotations

import argparse
import glob
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingest import pipeline, verify  # noqa: E402
from tileserver.core.layers import LAYERS  # noqa: E402
from tileserver.store.storage import open_storage  # noqa: E402
from tileserver.store import Store  # noqa: E402
from tileserver.core.verification import summary  # noqa: E402

DEFAULT_SEQUENCE = str(REPO.parent / "shared" / "data" / "mrms-20190610" / "PrecipRate_00.00_*.grib2")


def persistence_scores(store: Store, layer_id: str) -> dict[int, np.ndarray]:
    """The verification's own scoring with the nowcast replaced by its base frame."""
    layer = LAYERS[layer_id]
    catalog = store.load_catalog(layer_id)
    moving = verify.extrapolate
    verify.extrapolate = lambda base, field, grid, lead_s: base  # type: ignore[assignment]
    try:
        tables: dict[int, np.ndarray] = {}
        for frame in catalog.frames:
            for case in verify.score_observation(store, layer, frame, catalog)[0]:
                tables[case.lead_minutes] = tables.get(case.lead_minutes, 0) + np.asarray(case.counts)
    finally:
        verify.extrapolate = moving
    return tables


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", default=DEFAULT_SEQUENCE, help="glob of the source files, in time order")
    parser.add_argument("--layer", default="precip-rate", choices=[k for k, v in LAYERS.items() if v.nowcast])
    args = parser.parse_args()
    files = sorted(glob.glob(args.sequence))
    if not files:
        print(f"no files match {args.sequence}", file=sys.stderr)
        return 2
    layer = LAYERS[args.layer]
    store = Store(open_storage(tempfile.mkdtemp(prefix="wxtiles-verification-"), create=True))
    pipeline._verify = lambda store, layer, result, cog: None  # timed below instead
    print(f"{'frame':<22} {'ingest s':>9} {'verify s':>9} {'leads':>6} {'ratio':>6}")
    costs = []
    for path in files:
        started = time.perf_counter()
        result = pipeline.ingest_file(store, Path(path), layer)
        ingested = time.perf_counter() - started
        started = time.perf_counter()
        cases = verify.verify_observation(store, layer, result.frame)
        verified = time.perf_counter() - started
        if cases:
            costs.append((ingested, verified, len(cases)))
        print(f"{result.frame.time:%Y-%m-%d %H:%M} UTC {ingested:>9.2f} {verified:>9.2f} {len(cases):>6} {verified / ingested:>6.1%}")
    if costs:
        print(f"\nmedian over frames that scored: ingest {statistics.median(c[0] for c in costs):.2f} s, "
              f"verification {statistics.median(c[1] for c in costs):.2f} s "
              f"({statistics.median(c[1] / c[2] for c in costs):.3f} s per lead)")
    doc = summary(layer, store.load_verification(layer.id), store.retention.verification)
    persistence = persistence_scores(store, layer.id)
    print(f"\nCSI / POD / FAR over the run (event: {doc['event']}; cells of {doc['cell_km']} km)")
    print(f"{'lead':>5} {'cases':>6} " + " ".join(f"{'> ' + format(t, 'g') + ' ' + layer.units:>24} {'persistence CSI':>16}" for t in layer.thresholds))
    for lead in doc["leads"]:
        if not lead["cases"]:
            continue
        cells = []
        for i, row in enumerate(lead["thresholds"]):
            h, m, f, _ = persistence[lead["lead_minutes"]][i]
            cells.append(f"{row['csi']!s:>8} {row['pod']!s:>7} {row['far']!s:>7} {h / (h + m + f) if h + m + f else float('nan'):>16.3f}")
        print(f"{lead['lead_minutes']:>5} {lead['cases']:>6} " + " ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
