"""Drop GDAL's cached knowledge of a network file after a failed read.

GDAL's /vsis3/ layer caches a file's existence and size; when the store was
briefly down, it keeps answering "does not exist" after the store is back.
rasterio 1.4 has no binding for ``VSICurlPartialClearCache``, so it is called
through ctypes on the GDAL library rasterio itself loaded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import lru_cache
from pathlib import Path

import rasterio

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _libgdal() -> ctypes.CDLL | None:
    bundled = sorted((Path(rasterio.__file__).parent.parent / "rasterio.libs").glob("libgdal*.so*"))
    candidates = [str(p) for p in bundled] + [name for name in [ctypes.util.find_library("gdal")] if name]
    for candidate in candidates:
        try:
            lib = ctypes.CDLL(candidate)
            lib.VSICurlPartialClearCache.argtypes = [ctypes.c_char_p]
            lib.VSICurlPartialClearCache.restype = None
            return lib
        except (OSError, AttributeError):
            continue
    log.warning("cannot find GDAL's VSICurlPartialClearCache; network read failures may be cached")
    return None


def forget(path: str) -> None:
    if not path.startswith("/vsi"):
        return
    lib = _libgdal()
    if lib is not None:
        lib.VSICurlPartialClearCache(path.encode())
