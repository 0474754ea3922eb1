"""What the tile server does, as plain objects over a store, split by concern: no HTTP here.

:class:`TileService` wires the parts together, one per concern:

- ``catalogs``: the store as the server sees it (cached catalogs, frame reads, health, readiness);
- ``nowcast``: motion fields and trajectories, nowcast pixels;
- ``tiles``: a tile URL's frame, validators, pixels, colours and the tile cache;
- ``points``: values at a point, and point time series;
- ``metadata``: layer metadata and live verification.

Animated loops (``tileserver.service.loops``) draw on the tiles.
"""

from __future__ import annotations

from tileserver.core.settings import Settings
from tileserver.service.catalogs import Catalogs
from tileserver.service.metadata import Metadata
from tileserver.service.metrics import Metrics
from tileserver.service.nowcast import Nowcasts
from tileserver.service.points import Points
from tileserver.service.tiles import Tiles
from tileserver.store import Store


class TileService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.metrics = Metrics()
        self.catalogs = Catalogs(store, settings, self.metrics)
        self.nowcast = Nowcasts(self.catalogs)
        self.tiles = Tiles(self.catalogs, self.nowcast, settings, self.metrics)
        self.points = Points(self.catalogs, self.nowcast, settings)
        self.metadata = Metadata(self.catalogs)

    def close(self) -> None:
        self.points.close()
        self.catalogs.close()
