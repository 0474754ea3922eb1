"""Ingest source files into the store: decode, build the COG, publish, prune."""

from __future__ import annotations

import contextlib
import logging
import sys
from time import monotonic
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import rasterio
from tqdm import tqdm

from ingest.cog import build_cog
from ingest.decode import BandChoice, SourceField, read_fields
from ingest.errors import IngestError
from ingest.motion import build_motion, ensure_latest_motion
from ingest.verify import verify_observation
from tileserver.core.layers import Layer
from tileserver.store.series import write_sidecar
from tileserver.store.storage import StorageError
from tileserver.store import FrameConflictError, PublishResult, Store


log = logging.getLogger(__name__)


@dataclass
class IngestReport:
    published: list[PublishResult] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def ingest_file(
    store: Store,
    path: Path,
    layer: Layer,
    *,
    time: datetime | None = None,
    run: datetime | None = None,
    band: BandChoice | None = None,
) -> PublishResult:
    """Ingest one file's field (its first time step); raises :class:`IngestError` and publishes nothing on failure."""
    fields = read_fields(path, layer, time=time, run=run, band=band)
    try:
        result = _publish_next(store, fields, layer, path.name)
    finally:
        fields.close()
    assert result is not None  # read_fields yields at least one field or raises
    return result


def ingest_source(
    store: Store,
    path: Path,
    layer: Layer,
    *,
    time: datetime | None = None,
    run: datetime | None = None,
    band: BandChoice | None = None,
) -> list[PublishResult]:
    """Ingest every time step of one file, in file order. A failing step stops the
    file with :class:`IngestError`; the steps published before it stay (each is a whole frame)."""
    fields = read_fields(path, layer, time=time, run=run, band=band)
    results = []
    while (result := _publish_next(store, fields, layer, path.name)) is not None:
        results.append(result)
    return results


def _publish_next(store: Store, fields: Iterator[SourceField], layer: Layer, source_name: str) -> PublishResult | None:
    """Decode the next field, build its COG, motion field and series sidecar, and publish them.

    The field is pulled here rather than passed in so that this frame holds the
    only reference to the grid, and ``del source`` really frees it before motion estimation.
    """
    started = monotonic()
    source = next(fields, None)
    if source is None:
        return None
    frame_time, frame_run = source.time, source.run
    try:
        work = store.storage.temporary_path(".tif")
        motion_work = store.storage.temporary_path(".motion.tif")
        series_work = store.storage.temporary_path(".series.bin")
    except StorageError as exc:
        raise IngestError(str(exc)) from None
    try:
        try:
            built = build_cog(source, layer, work)
        except Exception as exc:  # GDAL reports warp and encode failures in many types
            raise IngestError(f"cannot reproject or write the COG: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
        # The grid is in the COG now; motion estimation would otherwise run with it still in memory.
        del source
        try:
            motion = _motion(store, layer, work, frame_time, motion_work)
            result = store.publish(
                layer, work, time=frame_time, run=frame_run, digest=built.digest,
                bounds=built.bounds, native_zoom=built.native_zoom, source=source_name, motion=motion,
                series=_series(work, series_work), started=started,
            )
            _latest_motion(store, layer)
            if result.status == "published":
                _verify(store, layer, result, work)
            return result
        except FrameConflictError as exc:
            raise IngestError(str(exc)) from None
        except StorageError as exc:
            # The store's client already retried with backoff; nothing was listed.
            raise IngestError(str(exc)) from None
    finally:
        for leftover in (work, motion_work, series_work):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _series(cog: Path, out: Path) -> tuple[Path, tuple[float, float, float, int, int]]:
    """The point-series sidecar of a new COG, on its full-resolution grid."""
    with rasterio.open(cog) as dataset:
        codes = dataset.read(1)
        t = dataset.transform
        write_sidecar(codes, int(dataset.nodata), out)
        return out, (t.c, t.f, t.a, dataset.width, dataset.height)


def _motion(store: Store, layer: Layer, cog: Path, time: datetime, out: Path) -> Path | None:
    """The new frame's motion field; a failure costs its nowcasts, never the frame."""
    try:
        return build_motion(store, layer, cog, time, out)
    except StorageError:
        raise
    except Exception as exc:  # noqa: BLE001 - motion is an extra; log and go on
        log.warning("%s %s: no motion field: %s", layer.id, time, exc)
        return None


def _latest_motion(store: Store, layer: Layer) -> None:
    try:
        ensure_latest_motion(store, layer)
    except Exception as exc:  # noqa: BLE001 - as above
        log.warning("%s: no motion field for the newest frame: %s", layer.id, exc)


def _verify(store: Store, layer: Layer, result: PublishResult, cog: Path) -> None:
    """Score the nowcasts this observation verifies; a failure costs the scores, never the frame."""
    started = monotonic()
    try:
        # A local store took the file by renaming it; an S3 store left it, and it saves reading it back.
        cases = verify_observation(store, layer, result.frame, str(cog) if cog.exists() else None)
    except Exception as exc:  # noqa: BLE001 - verification is an extra, as motion is
        log.warning("%s %s: nowcasts not verified: %s", layer.id, result.frame.time, exc)
        return
    if cases:
        log.info("%s %s: verified %d nowcasts in %.2f s", layer.id, result.frame.time, len(cases), monotonic() - started)


def ingest_files(
    store: Store,
    paths: Iterable[Path],
    layer: Layer,
    *,
    time: datetime | None = None,
    run: datetime | None = None,
    band: BandChoice | None = None,
    progress: bool = True,
) -> IngestReport:
    """Ingest many files; one bad file is reported and skipped, the rest go in."""
    report = IngestReport()
    paths = list(paths)
    with tqdm(paths, unit="file", disable=not progress or len(paths) < 2, desc=f"ingest {layer.id}") as bar:
        for path in bar:
            try:
                report.published.extend(ingest_source(store, path, layer, time=time, run=run, band=band))
            except IngestError as exc:
                report.failed.append((path, str(exc)))
                if progress:
                    bar.write(f"{path}: {exc}", file=sys.stderr)
    if report.published:
        store.prune(layer.id)
    return report
