"""The store: the contract between ingest and the tile server.

``catalog`` defines the layout and the catalog format, ``store`` publishes and
prunes, ``storage`` is the backend interface (local folder; ``s3`` for S3 and
S3-compatible stores) and ``series`` the point-series sidecar format.
"""

from tileserver.store.catalog import (
    Bounds, Catalog, CatalogError, Frame, FrameConflictError, Pack, catalog_key, frame_key, motion_key, series_key,
    verification_key,
)
from tileserver.store.store import PublishResult, Retention, Store

__all__ = [
    "Bounds", "Catalog", "CatalogError", "Frame", "FrameConflictError", "Pack", "PublishResult", "Retention", "Store",
    "catalog_key", "frame_key", "motion_key", "series_key", "verification_key",
]
