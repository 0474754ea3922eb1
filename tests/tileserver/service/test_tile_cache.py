"""The tile cache's size setting bounds the memory it really holds."""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import mercantile

from renderers.png import transparent_png
from tileserver.core.layers import LAYERS
from tileserver.service.params import TileRequest
from tileserver.service import TileService
from tileserver.core.settings import Settings
from tileserver.store.storage import open_storage
from tileserver.store import Catalog, Frame, Store
from tests.conftest import T0

RADAR = LAYERS["reflectivity"]


def test_a_full_cache_holds_no_more_memory_than_its_setting(tmp_path: Path) -> None:
    service = TileService(Store(open_storage(str(tmp_path / "store"), create=True)), Settings(store=str(tmp_path / "store"), cache_mb=2))
    frame = Frame("reflectivity", T0, None, "k", "d" * 64, (-130, 20, -60, 55), 7, 1, "s", T0)
    target = service.catalogs.target(RADAR, T0, catalog=Catalog("reflectivity", (frame,)))
    empty = transparent_png(256)
    rng = random.Random(1)
    tracemalloc.start()
    try:
        entries = 0
        # As served: mostly the one shared empty tile, the rest small palette PNGs of their own.
        while entries < 40_000:
            z = rng.randint(3, 14)
            tile = mercantile.Tile(rng.randrange(2**z), rng.randrange(2**z), z)
            request = TileRequest(layer=RADAR, time=T0, run=None, tile=tile, size=256, format="png", colormap=RADAR.colormap)
            body = empty if rng.random() < 0.9 else rng.randbytes(rng.randint(150, 900))
            service.tiles.keep(service.tiles.tile_etag(request, target), body)
            entries += 1
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(service.tiles.cache) < entries, "the cache must have filled and evicted"
    assert held <= 2 * 2**20 * 1.05, f"{held / 2**20:.2f} MB held by a 2 MB cache"
    # ...and the bound is not so loose that the cache holds far less than it may.
    assert held >= 2 * 2**20 * 0.6

