"""Read tile windows and points from frame COGs, reusing open datasets.

Frames are Web Mercator COGs on the GoogleMapsCompatible grid, so a tile maps to
a window of whole blocks at its zoom's overview; GDAL picks the overview from
the output size. Reads are nearest-neighbour on the stored codes: codes are
exact values, and blending codes would blend "no coverage" into data.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator

import mercantile
import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.errors import RasterioIOError
from rasterio.windows import Window


class FrameGone(LookupError):
    """The frame's file is no longer in the store (pruned after the catalog was read)."""


class FrameUnreadable(RuntimeError):
    """The frame's file exists but GDAL cannot read it."""


class DatasetPool:
    """Open datasets kept between requests: idle handles per path, LRU over paths.

    A rasterio dataset must not be read by two threads at once, so each request
    borrows a handle of its own and gives it back. At most ``idle_per_path``
    handles of one path and ``max_idle`` in all are kept; the least recently
    used paths give theirs up first.
    """

    def __init__(self, max_paths: int = 64, idle_per_path: int = 2, max_idle: int | None = None) -> None:
        self.max_paths = max_paths
        self.idle_per_path = idle_per_path
        self.max_idle = max_idle if max_idle is not None else max_paths * idle_per_path
        self._idle_count = 0
        self._idle: OrderedDict[str, list[rasterio.DatasetReader]] = OrderedDict()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def open(self, path: str) -> Iterator[rasterio.DatasetReader]:
        dataset = self._borrow(path)
        ok = False
        try:
            yield dataset
            ok = True
        finally:
            if ok:
                self._give_back(path, dataset)
            else:
                dataset.close()

    def _borrow(self, path: str) -> rasterio.DatasetReader:
        with self._lock:
            idle = self._idle.get(path)
            if idle:
                self._idle.move_to_end(path)
                self._idle_count -= 1
                return idle.pop()
        try:
            return rasterio.open(path)
        except RasterioIOError as exc:
            text = str(exc)
            if "No such file" in text or "does not exist" in text:
                raise FrameGone(path) from None
            raise FrameUnreadable(f"{path}: {text.splitlines()[0] if text else 'unreadable'}") from None

    def _give_back(self, path: str, dataset: rasterio.DatasetReader) -> None:
        evicted: list[rasterio.DatasetReader] = []
        with self._lock:
            idle = self._idle.setdefault(path, [])
            self._idle.move_to_end(path)
            if len(idle) < self.idle_per_path:
                idle.append(dataset)
                self._idle_count += 1
            else:
                evicted.append(dataset)
            while len(self._idle) > self.max_paths:
                _, handles = self._idle.popitem(last=False)
                self._idle_count -= len(handles)
                evicted.extend(handles)
            for oldest in list(self._idle):
                if self._idle_count <= self.max_idle:
                    break
                handles = self._idle[oldest]
                while handles and self._idle_count > self.max_idle:
                    evicted.append(handles.pop())
                    self._idle_count -= 1
                if not handles and oldest != path:
                    del self._idle[oldest]
        for handle in evicted:
            handle.close()

    def forget(self, path: str) -> None:
        with self._lock:
            handles = self._idle.pop(path, [])
            self._idle_count -= len(handles)
        for handle in handles:
            handle.close()

    def close(self) -> None:
        with self._lock:
            all_handles = [h for handles in self._idle.values() for h in handles]
            self._idle.clear()
            self._idle_count = 0
        for handle in all_handles:
            handle.close()


def read_tile(dataset: rasterio.DatasetReader, tile: mercantile.Tile, size: int) -> np.ndarray:
    """The codes of an XYZ tile, ``size`` x ``size``; nodata outside the frame.

    Output pixel (i, j) takes the stored cell under its centre, so pixels line up
    with mercantile's tile geometry at every zoom, overzoom included.
    """
    left, bottom, right, top = mercantile.xy_bounds(tile)
    return read_area(dataset, left, top, (right - left) / size, size, size)


def read_area(dataset: rasterio.DatasetReader, left: float, top: float, pixel: float, width: int, height: int) -> np.ndarray:
    """Codes on a north-up mercator grid anchored at (left, top) with square ``pixel`` cells.

    Each output cell takes the stored cell under its centre (nodata outside the
    frame); GDAL reads from the overview matching ``pixel``.
    """
    nodata = dataset.nodata
    out = np.full((height, width), nodata, dtype=dataset.dtypes[0])
    size_x, size_y = width, height
    transform = dataset.transform
    res_x, res_y = transform.a, -transform.e
    x0, y0 = transform.c, transform.f
    x1, y1 = x0 + dataset.width * res_x, y0 - dataset.height * res_y
    # Output pixels whose centres fall inside the dataset.
    i0 = max(0, math.ceil((x0 - left) / pixel - 0.5))
    i1 = min(size_x, math.ceil((x1 - left) / pixel - 0.5))
    j0 = max(0, math.ceil((top - y0) / pixel - 0.5))
    j1 = min(size_y, math.ceil((top - y1) / pixel - 0.5))
    if i0 >= i1 or j0 >= j1:
        return out
    col_off = (left + i0 * pixel - x0) / res_x
    row_off = (y0 - (top - j0 * pixel)) / res_y
    width = (i1 - i0) * pixel / res_x
    height = (j1 - j0) * pixel / res_y
    window = Window(max(col_off, 0.0), max(row_off, 0.0), min(width, dataset.width), min(height, dataset.height))
    out[j0:j1, i0:i1] = dataset.read(1, window=window, out_shape=(j1 - j0, i1 - i0), resampling=Resampling.nearest)
    return out


def read_motion(dataset: rasterio.DatasetReader) -> tuple[np.ndarray, np.ndarray, Affine]:
    """A stored motion field: u and v (m/s, float32, no-data as 0) and their grid's transform."""
    u, v = dataset.read((1, 2)).astype(np.float32)
    return np.nan_to_num(u), np.nan_to_num(v), dataset.transform


def read_point(dataset: rasterio.DatasetReader, lon: float, lat: float) -> int | None:
    """The stored code at a lon/lat from the full-resolution level; None outside the frame."""
    x, y = mercantile.xy(lon, lat)
    col, row = ~dataset.transform @ (x, y)
    col, row = math.floor(col), math.floor(row)
    if not (0 <= col < dataset.width and 0 <= row < dataset.height):
        return None
    return int(dataset.read(1, window=Window(col, row, 1, 1))[0, 0])
