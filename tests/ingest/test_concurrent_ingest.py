"""Ingests running in threads of one process (as a fetcher or a test pool may) do not disturb each other."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
from rasterio.errors import NotGeoreferencedWarning

from ingest.demo import samples
from ingest.decode import quiet_georeference
from ingest.pipeline import ingest_file
from tests.conftest import T0, radar_grid
from tileserver.core.layers import LAYERS
from tileserver.store import Store

RADAR = LAYERS["reflectivity"]


def test_threads_ingest_without_warnings_or_lost_frames(store: Store, tmp_path: Path) -> None:
    # Warnings are errors in this suite: a thread that leaves its catch_warnings
    # block while another is inside one used to turn a silenced rasterio warning
    # into an exception (1 in a few hundred COG writes).
    times = [T0 + timedelta(minutes=5 * k) for k in range(12)]
    files = []
    for when in times:
        path = tmp_path / f"MRMS_MergedReflectivityQCComposite_00.50_{when:%Y%m%d-%H%M%S}.grib2"
        samples.write_mrms_grib2(path, radar_grid(shift_cols=len(files)).astype(np.float32), when, gzip=False)
        files.append(path)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda path: ingest_file(store, path, RADAR), files))
    assert [r.status for r in results] == ["published"] * len(files)
    assert [f.time for f in store.load_catalog(RADAR.id).frames] == times


def test_a_thread_leaving_its_quiet_block_does_not_unsilence_another() -> None:
    a_inside, b_inside = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def a() -> None:
        with quiet_georeference():
            a_inside.set()
            b_inside.wait(timeout=0.5)  # B must not get in while A is inside

    def b() -> None:
        a_inside.wait()
        try:
            with quiet_georeference():
                b_inside.set()
                first.join()  # A has left its block, restoring the filters it saw on entry
                warnings.warn("no geotransform", NotGeoreferencedWarning)  # an error in this suite unless silenced
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    first, second = threading.Thread(target=a), threading.Thread(target=b)
    first.start()
    second.start()
    second.join()
    assert not errors, errors
