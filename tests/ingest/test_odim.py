"""ODIM_H5 radar composites: the real MeteoSwiss file through the real pipeline and server, then synthetic files.

The truth is h5py's own reading of the source (raw * gain + offset, nodata as no
coverage, undetect as no echo), placed on a grid the test knows independently of
ingest/odim.py: the published CCS4 grid for the MeteoSwiss file, and the grid a
synthetic file was written from.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import h5py
import httpx
import mercantile
import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS, Transformer

from ingest.decode import read_field
from ingest.errors import IngestError
from ingest.pipeline import ingest_file, ingest_files
from tileserver.core.layers import LAYERS, Layer
from tileserver.store.storage import open_storage
from tileserver.store import Frame, Store
from tileserver.core.timeutil import format_utc

PROJECT = Path(__file__).resolve().parents[2]
METEOSWISS = PROJECT / ".." / "shared" / "data" / "grids" / "meteoswiss_radar_rainrate_odim_somerc_20240227T0950Z.h5"
# MeteoSwiss' CCS4 grid (Swiss LV03, 1 km): outer edges x 255..965 km, y -160..480 km.
CCS4 = Affine(1000.0, 0.0, 255_000.0, 0.0, -1000.0, 480_000.0)
LAEA = "+proj=laea +lat_0=55 +lon_0=10 +x_0=1950000 +y_0=2100000 +ellps=WGS84 +units=m +no_defs"
WHEN = datetime(2026, 11, 27, 21, 40, tzinfo=timezone.utc)
needs_meteoswiss = pytest.mark.skipif(not METEOSWISS.is_file(), reason="../shared/data is not beside the project")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(open_storage(str(tmp_path / "store"), create=True))


@dataclass(frozen=True)
class Truth:
    values: np.ndarray  # physical values, NaN = no coverage, -inf = no echo
    crs: CRS
    transform: Affine


def meteoswiss_truth() -> Truth:
    with h5py.File(METEOSWISS, "r", locking=False) as h5:
        what = h5["dataset1/data1/what"].attrs
        raw = h5["dataset1/data1/data"][()]
        values = raw * what["gain"] + what["offset"]
        values[np.isnan(raw)] = np.nan  # the file's nodata is NaN
        return Truth(values, CRS.from_proj4(h5["where"].attrs["projdef"]), CCS4)


@dataclass
class Fidelity:
    checked: int = 0
    matched: int = 0
    errors: list[float] = field(default_factory=list)  # against the source cell under each sample
    coverage_checked: int = 0


def sample_cells(truth: Truth, n: int, rng: np.random.Generator, where: np.ndarray | None = None) -> list[tuple[float, float]]:
    """Random positions inside source cells (``where`` picks the cells), away from the grid's edge cells, as lon/lat."""
    inner = np.zeros(truth.values.shape, dtype=bool)
    inner[1:-1, 1:-1] = True
    cells = np.argwhere(inner & (where if where is not None else True))
    picked = cells[rng.integers(len(cells), size=n)]
    to_lonlat = Transformer.from_crs(truth.crs, "EPSG:4326", always_xy=True)
    points = []
    for j, i in picked:
        x, y = truth.transform * (i + rng.uniform(0.1, 0.9), j + rng.uniform(0.1, 0.9))
        points.append(to_lonlat.transform(x, y))
    return points


def compare(truth: Truth, layer: Layer, served: list[tuple[str, float | None, float, float]], fidelity: Fidelity) -> None:
    """Check served (status, value) at Web Mercator sample centres (x, y) against the source.

    A bilinear sample draws on the 2x2 source cells around it, a nearest one on
    the cell under it (GDAL places it within 0.125 cells): both lie in the 3x3
    neighbourhood of the cell under the sample. A value matches when it is
    within half a storage step of that neighbourhood's range; its error is the
    distance to the source cell under the sample. Coverage must agree wherever
    the neighbourhood agrees with itself.
    """
    step = layer.encoding.scale / 2 + 1e-6
    to_source = Transformer.from_crs("EPSG:3857", truth.crs, always_xy=True)
    for status, value, x, y in served:
        col, row = ~truth.transform * to_source.transform(x, y)
        i, j = int(np.floor(col)), int(np.floor(row))
        if not (1 <= i < truth.values.shape[1] - 1 and 1 <= j < truth.values.shape[0] - 1):
            continue  # an edge cell, where the warp has partial kernels
        block = truth.values[j - 1 : j + 2, i - 1 : i + 2]
        if np.isnan(block).all():
            assert status == "no-coverage", (x, y, status, value)
            fidelity.coverage_checked += 1
        elif not np.isnan(block).any():
            assert status != "no-coverage", (x, y, status, block)
            fidelity.coverage_checked += 1
        if status != "ok" or np.isnan(truth.values[j, i]):
            continue
        finite = block[np.isfinite(block)]
        fidelity.checked += 1
        fidelity.matched += int(finite.size > 0 and finite.min() - step <= value <= finite.max() + step)
        if np.isfinite(truth.values[j, i]):
            fidelity.errors.append(abs(value - truth.values[j, i]))


def served_points(client: httpx.Client, store: Store, layer: Layer, frame: Frame, points: list[tuple[float, float]]) -> list[tuple[str, float | None, float, float]]:
    """``/point`` at each lon/lat, with the centre of the stored cell it read."""
    with rasterio.open(store.storage.gdal_path(frame.key)) as cog:
        transform = cog.transform
    out = []
    for lon, lat in points:
        body = client.get(f"/api/layers/{layer.id}/point", params={"lon": lon, "lat": lat, "time": format_utc(frame.time)}).json()
        col, row = ~transform * mercantile.xy(lon, lat)
        cx, cy = transform * (np.floor(col) + 0.5, np.floor(row) + 0.5)
        out.append((body["status"], body["value"], cx, cy))
    return out


def served_tiles(client: httpx.Client, store: Store, layer: Layer, frame: Frame, points: list[tuple[float, float]]) -> list[tuple[str, float | None, float, float]]:
    """The ``.npy`` tile pixel under each lon/lat at the frame's native zoom, with the pixel's centre."""
    tiles: dict[mercantile.Tile, np.ndarray] = {}
    out = []
    for lon, lat in points:
        tile = mercantile.tile(lon, lat, frame.native_zoom)
        if tile not in tiles:
            response = client.get(f"/tiles/{layer.id}/{format_utc(frame.time)}/{tile.z}/{tile.x}/{tile.y}.npy")
            assert response.status_code == 200, response.text
            tiles[tile] = np.load(io.BytesIO(response.content))
        array = tiles[tile]
        bounds = mercantile.xy_bounds(tile)
        size = array.shape[0]
        pixel = (bounds.right - bounds.left) / size
        x, y = mercantile.xy(lon, lat)
        c, r = min(int((x - bounds.left) / pixel), size - 1), min(int((bounds.top - y) / pixel), size - 1)
        value = float(array[r, c])
        status = "no-coverage" if np.isnan(value) else "no-echo" if np.isneginf(value) else "ok"
        out.append((status, value if status == "ok" else None, bounds.left + (c + 0.5) * pixel, bounds.top - (r + 0.5) * pixel))
    return out


@pytest.fixture
def client(store: Store, live_server_for) -> Iterator[httpx.Client]:  # noqa: ANN001
    server = live_server_for(store.storage.url)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@needs_meteoswiss
def test_meteoswiss_corners_are_pixel_centres_of_ccs4() -> None:
    """Why ingest/odim.py weighs the corners against xscale: this file's corners are the CCS4 corner pixels' centres."""
    with h5py.File(METEOSWISS, "r", locking=False) as h5:
        where = h5["where"].attrs
        to_grid = Transformer.from_crs("EPSG:4326", CRS.from_proj4(where["projdef"]), always_xy=True)
        ll = to_grid.transform(where["LL_lon"], where["LL_lat"])
        ur = to_grid.transform(where["UR_lon"], where["UR_lat"])
        assert (where["xscale"], where["xsize"], where["ysize"]) == (1.0, 710, 640)  # xscale in km
    assert ll == pytest.approx(CCS4 * (0.5, 639.5), abs=0.01)
    assert ur == pytest.approx(CCS4 * (709.5, 0.5), abs=0.01)
    source = read_field(METEOSWISS, LAYERS["precip-rate"])
    assert tuple(source.transform) == pytest.approx(tuple(CCS4), abs=0.01)
    assert source.time == datetime(2024, 2, 27, 9, 50, tzinfo=timezone.utc)  # what/date+time: the composite's end time
    assert source.description == "ODIM COMP RATE (dataset1/data1)"


@needs_meteoswiss
def test_meteoswiss_rain_rate_served_as_the_file_says(store: Store, client: httpx.Client) -> None:
    layer = LAYERS["precip-rate"]
    frame = ingest_file(store, METEOSWISS, layer).frame
    assert frame.time == datetime(2024, 2, 27, 9, 50, tzinfo=timezone.utc) and frame.run is None
    west, south, east, north = frame.bounds
    assert (west, south, east, north) == pytest.approx((2.69, 43.62, 12.46, 49.47), abs=0.01)
    truth = meteoswiss_truth()
    rng = np.random.default_rng(12)
    # Everywhere (mostly dry or uncovered), then where it rains, then along the coverage's rim.
    points = sample_cells(truth, 250, rng) + sample_cells(truth, 350, rng, truth.values > 0)
    covered = ~np.isnan(truth.values)
    rim = covered & ~(np.roll(covered, 1, 0) & np.roll(covered, -1, 0) & np.roll(covered, 1, 1) & np.roll(covered, -1, 1))
    points += sample_cells(truth, 150, rng, rim)
    for read in (served_points, served_tiles):
        fidelity = Fidelity()
        compare(truth, layer, read(client, store, layer, frame, points), fidelity)
        assert fidelity.checked > 400, read.__name__
        assert fidelity.matched >= 0.99 * fidelity.checked, (read.__name__, fidelity.matched, fidelity.checked)
        assert fidelity.coverage_checked > 500, read.__name__


def write_odim(
    path: Path,
    raw: np.ndarray,
    *,
    quantity: str = "DBZH",
    object_: str = "COMP",
    projdef: str = LAEA,
    transform: Affine = Affine(4000.0, 0.0, 1_500_000.0, 0.0, -4000.0, 2_400_000.0),
    corners_at: str = "edges",
    xscale: float | None = None,
    root_what: dict[str, object] | None = None,
    dataset_what: dict[str, object] | None = None,
    data_what: dict[str, object] | None = None,
) -> Path:
    """An ODIM_H5 2.3 file of one ``dataset1/data1``; the corners from ``transform`` as edges or pixel centres."""
    rows, cols = raw.shape
    to_lonlat = Transformer.from_crs(CRS.from_proj4(projdef), "EPSG:4326", always_xy=True)
    inset = 0.5 if corners_at == "centres" else 0.0
    positions = {"LL": (inset, rows - inset), "UL": (inset, inset), "UR": (cols - inset, inset), "LR": (cols - inset, rows - inset)}
    with h5py.File(path, "w") as h5:
        h5.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_3")
        what = h5.create_group("what")
        for key, value in {"object": object_, "date": f"{WHEN:%Y%m%d}", "time": f"{WHEN:%H%M%S}", "version": "H5rad 2.3", **(root_what or {})}.items():
            what.attrs[key] = np.bytes_(value) if isinstance(value, str) else value
        where = h5.create_group("where")
        where.attrs["projdef"] = np.bytes_(projdef)
        where.attrs["xsize"], where.attrs["ysize"] = np.int64(cols), np.int64(rows)
        where.attrs["xscale"] = transform.a if xscale is None else xscale
        where.attrs["yscale"] = -transform.e if xscale is None else xscale
        for corner, (i, j) in positions.items():
            lon, lat = to_lonlat.transform(*(transform * (i, j)))
            where.attrs[f"{corner}_lon"], where.attrs[f"{corner}_lat"] = lon, lat
        dataset = h5.create_group("dataset1")
        for key, value in {"product": "MAX", **(dataset_what or {})}.items():
            dataset.require_group("what").attrs[key] = np.bytes_(value) if isinstance(value, str) else value
        data = dataset.create_group("data1")
        data.create_dataset("data", data=raw, compression="gzip")
        for key, value in {"quantity": quantity, **(data_what or {})}.items():
            data.require_group("what").attrs[key] = np.bytes_(value) if isinstance(value, str) else value
    return path


def test_dbzh_gain_offset_nodata_undetect_into_reflectivity(store: Store, tmp_path: Path, client: httpx.Client) -> None:
    layer = LAYERS["reflectivity"]
    rows, cols = np.mgrid[0:120, 0:150]
    raw = (np.abs(np.sin(rows / 9.0) * np.cos(cols / 13.0)) * 180).astype(np.uint8)  # up to 58 dBZ
    raw[raw < 40] = 0  # undetect
    raw[:, :20] = 255  # nodata: outside the radars' reach
    path = write_odim(
        tmp_path / "T_PAAH21_C_EUOC_20261127214000.h5", raw,
        # A root gain of 2 that the inner levels override: the innermost ``what`` wins.
        root_what={"gain": 2.0}, dataset_what={"gain": 0.5, "offset": -32.0}, data_what={"nodata": 255.0, "undetect": 0.0},
    )
    frame = ingest_file(store, path, layer).frame
    assert frame.time == WHEN
    values = raw * 0.5 - 32.0
    truth = Truth(np.where(raw == 255, np.nan, np.where(raw == 0, -np.inf, values)), CRS.from_proj4(LAEA), Affine(4000.0, 0.0, 1_500_000.0, 0.0, -4000.0, 2_400_000.0))
    rng = np.random.default_rng(3)
    points = sample_cells(truth, 150, rng) + sample_cells(truth, 150, rng, np.isfinite(truth.values))
    for read in (served_points, served_tiles):
        served = read(client, store, layer, frame, points)
        fidelity = Fidelity()
        compare(truth, layer, served, fidelity)
        assert fidelity.checked > 100 and fidelity.matched >= 0.99 * fidelity.checked
        statuses = {status for status, *_ in served}
        assert statuses == {"ok", "no-echo", "no-coverage"}, read.__name__
    fidelity = Fidelity()
    compare(truth, layer, served_points(client, store, layer, frame, points), fidelity)
    assert np.median(fidelity.errors) <= layer.encoding.scale / 2  # nearest: mostly the very cell under the sample


@pytest.mark.parametrize("corners_at, xscale", [("edges", None), ("centres", None), ("centres", 3.6)])
def test_a_lit_pixel_lands_where_it_should(store: Store, tmp_path: Path, client: httpx.Client, corners_at: str, xscale: float | None) -> None:
    """Corners as the specification's outer edges, as pixel centres (MeteoSwiss), and with xscale in km."""
    layer = LAYERS["reflectivity"]
    # 3.6 km pixels: the COG's zoom (the one nearest the source's resolution) is finer than the source here.
    transform = Affine(3600.0, 0.0, 1_500_000.0, 0.0, -3600.0, 2_400_000.0)
    raw = np.zeros((90, 110), dtype=np.uint8)
    lit = (2, 106)  # near the far corner, where a wrong reading of the corners is furthest off
    raw[lit] = 200
    path = write_odim(
        tmp_path / f"lit-{corners_at}.h5", raw, transform=transform, corners_at=corners_at, xscale=xscale,
        dataset_what={"gain": 0.5, "offset": -32.0, "nodata": 255.0, "undetect": 0.0},
    )
    source = read_field(path, layer)
    assert tuple(source.transform) == pytest.approx(tuple(transform), abs=0.01)
    frame = ingest_file(store, path, layer).frame
    # A lattice over the lit pixel and its neighbours: the stored cell under each
    # point is lit exactly when its centre falls in the lit pixel (GDAL places a
    # sample within 0.125 pixels, so centres that close to an edge are left out).
    # Reading the corners the wrong way would shift the pixel by half its size.
    to_lonlat = Transformer.from_crs(CRS.from_proj4(LAEA), "EPSG:4326", always_xy=True)
    to_source = Transformer.from_crs("EPSG:3857", CRS.from_proj4(LAEA), always_xy=True)
    j, i = lit
    offsets = np.linspace(-0.9, 1.9, 15)
    points = [to_lonlat.transform(*(transform * (i + dx, j + dy))) for dx in offsets for dy in offsets]
    lit_seen = 0
    for status, value, x, y in served_points(client, store, layer, frame, points):
        col, row = ~transform * to_source.transform(x, y)
        if min(abs(col - i), abs(col - i - 1), abs(row - j), abs(row - j - 1)) < 0.13:
            continue
        inside = i < col < i + 1 and j < row < j + 1
        assert (status, value) == (("ok", 68.0) if inside else ("no-echo", None)), (col - i, row - j, status, value)
        lit_seen += inside
    assert lit_seen >= 1


def test_corners_that_contradict_xscale_are_refused(tmp_path: Path) -> None:
    path = write_odim(tmp_path / "bad-scale.h5", np.zeros((50, 60), dtype=np.uint8), xscale=3000.0)
    with pytest.raises(IngestError, match=r"^where/xscale 3000 fits neither reading of the corners.*inconsistent georeferencing$"):
        read_field(path, LAYERS["reflectivity"])


def test_corners_off_a_north_up_rectangle_are_refused(tmp_path: Path) -> None:
    path = write_odim(tmp_path / "skewed.h5", np.zeros((50, 60), dtype=np.uint8))
    with h5py.File(path, "a") as h5:  # the upper-left corner moved 10 pixels east: a sheared or rotated grid
        where = h5["where"].attrs
        to_grid = Transformer.from_crs("EPSG:4326", LAEA, always_xy=True)
        x, y = to_grid.transform(where["UL_lon"], where["UL_lat"])
        where["UL_lon"], where["UL_lat"] = to_grid.transform(x + 40_000, y, direction="INVERSE")
    with pytest.raises(IngestError, match="not a north-up rectangle"):
        read_field(path, LAYERS["reflectivity"])


def test_missing_quantity_lists_what_the_file_has(store: Store, tmp_path: Path) -> None:
    path = write_odim(tmp_path / "dbzh.h5", np.zeros((50, 60), dtype=np.uint8))
    with pytest.raises(IngestError, match=r"^no ODIM_H5 quantity for layer precip-rate \(looked for RATE; file has DBZH\)$"):
        ingest_file(store, path, LAYERS["precip-rate"])
    with pytest.raises(IngestError, match=r"^layer temperature-2m takes no ODIM_H5 quantity \(file has DBZH\)$"):
        ingest_file(store, path, LAYERS["temperature-2m"])
    assert store.load_catalog("precip-rate").frames == ()


def test_rate_undetect_is_zero_and_end_time_stands_in(store: Store, tmp_path: Path) -> None:
    raw = np.full((40, 50), 0, dtype=np.uint16)
    raw[10:20, 10:20] = 250  # 2.5 mm/h
    raw[:, :5] = 65535
    path = write_odim(
        tmp_path / "rate.h5", raw, quantity="RATE",
        dataset_what={"startdate": "20261127", "starttime": "213500", "enddate": "20261127", "endtime": "214000"},
        data_what={"gain": 0.01, "offset": 0.0, "nodata": 65535, "undetect": 0},
    )
    with h5py.File(path, "a") as h5:  # a file with no what/date and what/time at all
        del h5["what"].attrs["date"], h5["what"].attrs["time"]
    source = read_field(path, LAYERS["precip-rate"])
    assert source.time == WHEN
    assert np.isnan(source.values[:, :5]).all()
    assert (source.values[:, 5:10] == 0.0).all()  # undetect: no rain, which the rate layer stores as 0 mm/h
    assert source.values[15, 15] == pytest.approx(2.5)


def test_polar_volume_is_refused(store: Store, tmp_path: Path) -> None:
    path = write_odim(tmp_path / "pvol.h5", np.zeros((360, 500), dtype=np.uint8), object_="PVOL")
    with pytest.raises(IngestError, match=r"^is an ODIM_H5 polar volume \(object PVOL\), not a map grid; .*BALTRAD or wradlib\)$"):
        ingest_file(store, path, LAYERS["reflectivity"])


@needs_meteoswiss
def test_truncated_and_corrupt_files_are_refused_in_one_line(store: Store, tmp_path: Path) -> None:
    good = METEOSWISS.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good[: len(good) // 2])
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(good[:8] + b"\x00" * 4000)
    chopped_data = tmp_path / "chopped.h5"
    chopped_data.write_bytes(good[:-2000])  # the header may open; the data array cannot be read
    report = ingest_files(store, [truncated, corrupt, chopped_data, METEOSWISS], LAYERS["precip-rate"], progress=False)
    reasons = dict(report.failed)
    for path in (truncated, corrupt, chopped_data):
        assert "truncated or corrupt" in reasons[path] and "\n" not in reasons[path], reasons[path]
    assert [r.frame.source for r in report.published] == [METEOSWISS.name]
    assert len([o for o in store.storage.list("") if o.key.endswith(".tif")]) == 1


def test_other_hdf5_stays_with_gdal(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["Conventions"] = np.bytes_("CF-1.8")
        h5.create_dataset("precip_rate", data=np.zeros((20, 30), dtype=np.float32))
    with pytest.raises(IngestError) as raised:
        read_field(path, LAYERS["precip-rate"])
    assert "ODIM" not in str(raised.value)


def test_band_does_not_apply(tmp_path: Path) -> None:
    path = write_odim(tmp_path / "dbzh.h5", np.zeros((50, 60), dtype=np.uint8))
    with pytest.raises(IngestError, match="--band does not apply to ODIM_H5 files"):
        read_field(path, LAYERS["reflectivity"], band=(1,))
