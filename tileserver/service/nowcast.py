"""Nowcast pixels: motion fields and trajectories cached per field and lead, windows read for renderers."""

from __future__ import annotations

import threading

import numpy as np
import rasterio
from cachetools import LRUCache

from renderers.nowcast.advection import DepartureCache, Departures, MotionField
from renderers.nowcast.tiles import sample, source_window
from tileserver.core import grid
from tileserver.core.layers import LAYERS
from tileserver.core.reader import read_area, read_motion, read_point
from tileserver.service.catalogs import Catalogs
from tileserver.service.targets import Target

# Nowcast departure lattices kept (DepartureCache): 1.35 MB per lead over the
# MRMS domain, so a 2-hour horizon at 5 minutes (24 leads) takes 32 MB.
DEPARTURES_CACHE_MB = 48


class Nowcasts:
    def __init__(self, catalogs: Catalogs) -> None:
        self.catalogs = catalogs
        self._motion: LRUCache[str, MotionField] = LRUCache(maxsize=16)
        self._motion_lock = threading.Lock()
        # Each nowcast lead's trajectories, traced once per motion field and shared by all its tiles.
        self._departures = DepartureCache(max_bytes=DEPARTURES_CACHE_MB * 2**20)

    def motion_field(self, target: Target) -> MotionField:
        assert target.motion is not None
        with self._motion_lock:
            field = self._motion.get(target.motion)
        if field is None:
            field = self.catalogs.read(target.frame, lambda dataset: MotionField(*read_motion(dataset)), key=target.motion)
            with self._motion_lock:
                self._motion[target.motion] = field
        return field

    def departures(self, target: Target) -> Departures:
        """Where the nowcast's trajectories start: traced once per motion field and lead."""
        assert target.motion is not None
        return self._departures.get(target.motion, self.motion_field(target), target.lead_s)

    def tile_codes(self, target: Target, tile: grid.Tile, size: int) -> np.ndarray:
        """Codes of a nowcast tile: each pixel takes the base frame's value at its departure point."""
        departures = self.departures(target)
        layer = LAYERS[target.frame.layer]
        no_echo = layer.encoding.no_echo
        return self.catalogs.read(target.frame, lambda dataset: tile_codes(dataset, tile, size, departures, no_echo))

    def point_code(self, target: Target, lon: float, lat: float) -> int | None:
        departures = self.departures(target)
        return self.catalogs.read(target.frame, lambda dataset: point_code(dataset, lon, lat, departures))


def tile_codes(dataset: rasterio.DatasetReader, tile: grid.Tile, size: int, departures: Departures,
               no_echo: int | None = None) -> np.ndarray:
    """Codes of a nowcast tile: values between cells at the departure points (``renderers.nowcast.tiles``)."""
    left, _, right, top = grid.xy_bounds(tile)
    window = source_window(departures, left, top, (right - left) / size, size, grid.ORIGIN)
    area = read_area(dataset, window.left, window.top, window.step, window.width, window.height)
    return sample(area, window, int(dataset.nodata), no_echo)


def point_code(dataset: rasterio.DatasetReader, lon: float, lat: float, departures: Departures) -> int | None:
    lon0, lat0 = grid.lnglat(*departures.at(*grid.xy(lon, lat)))
    if not -85.05 < lat0 < 85.05:
        return None
    return read_point(dataset, lon0, lat0)
