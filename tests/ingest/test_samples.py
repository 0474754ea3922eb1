"""Round-trip tests of the sample-file writers (ingest.demo.samples) through rasterio/GDAL."""

from __future__ import annotations

import gzip
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import CRS, Transformer

from ingest.demo import samples, synthetic
from tests.fixtures import files

VALID = datetime(2024, 5, 1, 12, 34, 36, tzinfo=timezone.utc)
REF = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
MRMS_SHAPE = (350, 700)  # 0.1 deg over the MRMS domain


def ts(t: datetime) -> int:
    return int(t.timestamp())


def grib_time(tag: str) -> int:
    """GDAL >= 3.8 writes plain seconds, older versions '  123 sec UTC'."""
    return int(tag.split()[0])


def assert_same_crs(got: CRS | rasterio.crs.CRS, expected: CRS, points: list[tuple[float, float]]) -> None:
    """Equivalent CRSs map the same lon/lat points to the same coordinates (within 1 cm / 1e-9 deg)."""
    got = CRS.from_wkt(got.to_wkt())
    for lon, lat in points:
        a = Transformer.from_crs("EPSG:4326", got, always_xy=True).transform(lon, lat)
        b = Transformer.from_crs("EPSG:4326", expected, always_xy=True).transform(lon, lat)
        tol = 1e-9 if expected.is_geographic else 0.01
        assert abs(a[0] - b[0]) < tol and abs(a[1] - b[1]) < tol, (lon, lat, a, b)


def assert_transform_close(got: Affine, expected: Affine, tol_fraction: float = 0.01) -> None:
    """Same pixel size, and the origin within a fraction of a pixel."""
    assert got.b == 0 and got.d == 0
    assert got.a == pytest.approx(expected.a, rel=1e-9)
    assert got.e == pytest.approx(expected.e, rel=1e-9)
    assert abs(got.c - expected.c) < abs(expected.a) * tol_fraction
    assert abs(got.f - expected.f) < abs(expected.e) * tol_fraction


@pytest.fixture(scope="module")
def dbz() -> np.ndarray:
    _, frame = next(synthetic.radar_sequence(VALID, steps=1, shape=MRMS_SHAPE))
    return frame


# --------------------------------------------------------------------------- MRMS


def test_mrms_filename_and_parse() -> None:
    name = samples.mrms_filename("MergedReflectivityQCComposite", "00.50", VALID)
    assert name == "MRMS_MergedReflectivityQCComposite_00.50_20240501-123436.grib2.gz"
    assert samples.mrms_filename("PrecipRate", None, VALID) == "MRMS_PrecipRate_00.00_20240501-123436.grib2.gz"
    assert samples.mrms_filename("MergedReflectivityQCComposite", None, VALID) == name
    # naive datetimes are UTC
    assert samples.mrms_filename("PrecipRate", None, VALID.replace(tzinfo=None)).endswith("20240501-123436.grib2.gz")
    assert samples.parse_mrms_filename(name) == ("MergedReflectivityQCComposite", "00.50", VALID)
    assert samples.parse_mrms_filename("/x/MRMS_PrecipRate_00.00_20240501-123436.grib2")[0] == "PrecipRate"
    with pytest.raises(ValueError):
        samples.parse_mrms_filename("MRMS_PrecipRate_20240501.grib2.gz")


def test_mrms_composite_round_trip_gz(tmp_path: Path, dbz: np.ndarray) -> None:
    path = tmp_path / samples.mrms_filename("MergedReflectivityQCComposite", None, VALID)
    samples.write_mrms_grib2(path, dbz, VALID)
    raw = path.read_bytes()
    assert raw[:2] == b"\x1f\x8b"  # gzip, like NOAA's .grib2.gz
    assert gzip.decompress(raw)[:4] == b"GRIB"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no side files left behind

    with rasterio.open(f"/vsigzip/{path}") as src:
        assert src.driver == "GRIB"
        assert src.count == 1 and src.shape == MRMS_SHAPE
        assert src.nodata is None  # like real MRMS: -999 / -99 are plain values
        assert src.crs.is_geographic
        assert_same_crs(src.crs, samples.MRMS_CRS, [(-100.0, 40.0), (-61.0, 21.0)])
        assert "6378160" in src.crs.to_wkt()
        assert_transform_close(src.transform, Affine(0.1, 0, -130.0, 0, -0.1, 55.0))
        left, bottom, right, top = src.bounds
        assert (left, bottom, right, top) == pytest.approx((-130.0, 20.0, -60.0, 55.0), abs=1e-6)
        tags = src.tags(1)
        back = src.read(1)
    assert tags["GRIB_ELEMENT"] == "MergedReflectivityQCComposite"
    assert tags["GRIB_SHORT_NAME"] == "500-GPML"
    assert tags["GRIB_UNIT"] == "[dBZ]"
    assert tags["GRIB_DISCIPLINE"] == "209"
    assert grib_time(tags["GRIB_REF_TIME"]) == ts(VALID)
    assert grib_time(tags["GRIB_VALID_TIME"]) == ts(VALID)
    assert grib_time(tags["GRIB_FORECAST_SECONDS"]) == 0
    assert "CENTER=161" in tags["GRIB_IDS"] and "REF_TIME=2024-05-01T12:34:36Z" in tags["GRIB_IDS"]
    assert tags["GRIB_PDS_TEMPLATE_ASSEMBLED_VALUES"].split()[:2] == ["10", "0"]
    # lossless for MRMS's 0.5 dBZ values and for both missing codes
    np.testing.assert_array_equal(back.astype(np.float32), dbz)
    assert np.count_nonzero(back == -999.0) == np.count_nonzero(dbz == -999.0) > 0
    assert np.count_nonzero(back == -99.0) == np.count_nonzero(dbz == -99.0) > 0


def test_mrms_plain_grib_and_gzip_scheme(tmp_path: Path, dbz: np.ndarray) -> None:
    plain = samples.write_mrms_grib2(tmp_path / "a.grib2", dbz, VALID)
    assert plain.read_bytes()[:4] == b"GRIB"
    forced = samples.write_mrms_grib2(tmp_path / "b.grib2.gz", dbz, VALID, gzip=False)
    assert forced.read_bytes()[:4] == b"GRIB"
    gz = samples.write_mrms_grib2(tmp_path / "c.bin", dbz, VALID, gzip=True)
    assert gz.read_bytes()[:2] == b"\x1f\x8b"
    with rasterio.open(f"gzip://{gz}") as src:  # rasterio's spelling of /vsigzip/
        np.testing.assert_array_equal(src.read(1).astype(np.float32), dbz)


def test_mrms_precip_rate(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rate = np.round(rng.gamma(0.6, 4.0, size=(100, 200)), 1).astype(np.float32)
    rate[:10] = -3.0  # no coverage
    rate[10:20] = -1.0  # missing
    bounds = (-100.0, 30.0, -90.0, 35.0)
    path = samples.write_mrms_grib2(tmp_path / samples.mrms_filename("PrecipRate", None, VALID), rate, VALID,
                                    bounds=bounds, product="PrecipRate")
    with rasterio.open(f"/vsigzip/{path}") as src:
        tags = src.tags(1)
        back = src.read(1)
        assert src.bounds == pytest.approx(bounds, abs=1e-6)
    assert tags["GRIB_ELEMENT"] == "PrecipRate"
    assert tags["GRIB_SHORT_NAME"] == "0-GPML"
    assert tags["GRIB_UNIT"] == "[mm/hr]"
    assert tags["GRIB_DISCIPLINE"] == "209"
    np.testing.assert_allclose(back, rate, atol=1e-4)
    assert np.all(back[:10] == -3.0) and np.all(back[10:20] == -1.0)


@pytest.mark.parametrize("product", sorted(samples.MRMS_PRODUCTS))
def test_mrms_products_named_by_gdal(tmp_path: Path, product: str) -> None:
    path = samples.write_mrms_grib2(tmp_path / "p.grib2", np.zeros((10, 20), np.float32), VALID, product=product)
    with rasterio.open(path) as src:
        tags = src.tags(1)
    assert tags["GRIB_ELEMENT"] == product
    level_m = int(round(float(samples.MRMS_PRODUCTS[product].level) * 1000))
    assert tags["GRIB_SHORT_NAME"] == f"{level_m}-GPML"
    assert tags["GRIB_UNIT"] == f"[{samples.MRMS_PRODUCTS[product].unit}]"


def test_mrms_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        samples.write_mrms_grib2(tmp_path / "x.grib2", np.zeros((2, 2)), VALID, product="NoSuchProduct")
    with pytest.raises(ValueError):
        samples.write_mrms_grib2(tmp_path / "x.grib2", np.full((2, 2), np.nan), VALID)
    with pytest.raises(ValueError):
        samples.write_mrms_grib2(tmp_path / "x.grib2", np.zeros(4), VALID)


# --------------------------------------------------------------------------- HRRR

HRRR_SMALL = (60, 90)
HRRR_ORDER = [
    ("REFC", "0-EATM", "[dB]"),
    ("TMP", "50000-ISBL", "[C]"),
    ("TMP", "2-HTGL", "[C]"),
    ("UGRD", "10-HTGL", "[m/s]"),
    ("VGRD", "10-HTGL", "[m/s]"),
    ("UGRD", "80-HTGL", "[m/s]"),
]


def test_hrrr_transform_matches_real_grid() -> None:
    full = samples.hrrr_transform()
    assert (full.a, full.e) == (3000.0, -3000.0)
    # the origin GDAL reports for real HRRR files
    assert full.c == pytest.approx(-2699020.142, abs=0.01)
    assert full.f == pytest.approx(1588193.847, abs=0.01)
    # first grid point (south-west cell centre)
    x, y = full.c + 0.5 * full.a, full.f + (1059 - 0.5) * full.e
    lon, lat = Transformer.from_crs(samples.HRRR_CRS, "EPSG:4326", always_xy=True).transform(x, y)
    assert (lat, lon + 360) == pytest.approx(samples.HRRR_FIRST_POINT, abs=2e-5)
    # a smaller grid keeps the centre and the 3 km spacing
    small = samples.hrrr_transform(HRRR_SMALL)
    cx_full = full.c + 1799 / 2 * 3000
    cy_full = full.f - 1059 / 2 * 3000
    assert small.c + HRRR_SMALL[1] / 2 * 3000 == pytest.approx(cx_full)
    assert small.f - HRRR_SMALL[0] / 2 * 3000 == pytest.approx(cy_full)


@pytest.fixture(scope="module")
def hrrr_file(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    fields = {
        "TMP:2-HTGL": (280 + 10 * rng.random(HRRR_SMALL)).astype(np.float32),
        "UGRD:10-HTGL": (rng.random(HRRR_SMALL) * 20 - 10).astype(np.float32),
    }
    path = tmp_path_factory.mktemp("hrrr") / "hrrr.t12z.wrfsfcf06.grib2"
    samples.write_hrrr_grib2(path, REF, timedelta(hours=6), fields=fields, shape=HRRR_SMALL)
    return path, fields


def test_hrrr_messages_in_order_with_metadata(hrrr_file) -> None:
    path, _ = hrrr_file
    with rasterio.open(path) as src:
        assert src.count == len(HRRR_ORDER)
        assert src.shape == HRRR_SMALL
        got = [(src.tags(b)["GRIB_ELEMENT"], src.tags(b)["GRIB_SHORT_NAME"], src.tags(b)["GRIB_UNIT"])
               for b in range(1, src.count + 1)]
        all_tags = [src.tags(b) for b in range(1, src.count + 1)]
    assert got == HRRR_ORDER
    assert [m.key for m in samples.HRRR_MESSAGES] == [f"{e}:{s}" for e, s, _ in HRRR_ORDER]
    for tags in all_tags:
        assert tags["GRIB_DISCIPLINE"] == "0(Meteorological)"
        assert grib_time(tags["GRIB_REF_TIME"]) == ts(REF)
        assert grib_time(tags["GRIB_VALID_TIME"]) == ts(REF + timedelta(hours=6))
        assert grib_time(tags["GRIB_FORECAST_SECONDS"]) == 6 * 3600
        assert "CENTER=7(US-NCEP)" in tags["GRIB_IDS"]


def test_hrrr_georeferencing(hrrr_file) -> None:
    path, _ = hrrr_file
    with rasterio.open(path) as src:
        assert_same_crs(src.crs, samples.HRRR_CRS, [(-97.5, 38.5), (-120.0, 25.0), (-70.0, 50.0)])
        proj4 = src.crs.to_proj4()
        assert_transform_close(src.transform, samples.hrrr_transform(HRRR_SMALL))
    assert "+proj=lcc" in proj4 and "+lat_1=38.5" in proj4 and "+lon_0=-97.5" in proj4 and "+R=6371229" in proj4


def test_hrrr_values_round_trip(hrrr_file) -> None:
    path, fields = hrrr_file
    with rasterio.open(path) as src:
        t2_c = src.read(3)
        u10 = src.read(4)
        refc = src.read(1)
        t500 = src.read(2)
    # GRIB_NORMALIZE_UNITS=YES (default): Kelvin comes back as Celsius
    np.testing.assert_allclose(t2_c, fields["TMP:2-HTGL"] - 273.15, atol=0.006)
    np.testing.assert_allclose(u10, fields["UGRD:10-HTGL"], atol=0.006)
    assert refc.min() >= -10.0 and refc.max() <= synthetic.MAX_DBZ
    assert -80 < t500.min() and t500.max() < 0  # synthesised, in C
    with rasterio.Env(GRIB_NORMALIZE_UNITS="NO"):
        with rasterio.open(path) as src:
            assert src.tags(3)["GRIB_UNIT"] == "[K]"
            np.testing.assert_allclose(src.read(3), fields["TMP:2-HTGL"], atol=0.006)


def test_hrrr_subhourly_lead_and_synthetic_fields(tmp_path: Path) -> None:
    path = samples.write_hrrr_grib2(tmp_path / "subh.grib2", REF, timedelta(minutes=15), shape=(40, 50))
    with rasterio.open(path) as src:
        tags = src.tags(1)
        pds = tags["GRIB_PDS_TEMPLATE_ASSEMBLED_VALUES"].split()
        speed = np.hypot(src.read(4), src.read(5))
        t2 = src.read(3)
    assert grib_time(tags["GRIB_VALID_TIME"]) - grib_time(tags["GRIB_REF_TIME"]) == 900
    assert pds[7:9] == ["0", "15"]  # unit = minute, 15 of them
    assert speed.max() <= 25.01
    assert -40 < t2.min() and t2.max() < 45


def test_hrrr_rejects_unknown_or_misshaped_fields(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        samples.write_hrrr_grib2(tmp_path / "x.grib2", REF, timedelta(hours=1), fields={"APCP:0-SFC": np.zeros((4, 4))}, shape=(4, 4))
    with pytest.raises(ValueError):
        samples.write_hrrr_grib2(tmp_path / "x.grib2", REF, timedelta(hours=1), fields={"TMP:2-HTGL": np.zeros((3, 4))}, shape=(4, 4))


# --------------------------------------------------------------------------- GFS


def test_gfs_round_trip_and_longitude_rewrap(tmp_path: Path) -> None:
    shape = (181, 360)
    lon = np.arange(360, dtype=np.float32)
    u = np.tile(lon / 36.0, (181, 1))  # 0..9.97 m/s, encodes the longitude
    path = samples.write_gfs_grib2(tmp_path / "gfs.t12z.pgrb2.1p00.f003", REF, timedelta(hours=3), shape=shape,
                                   fields={"UGRD:10-HTGL": u})
    with rasterio.open(path) as src:
        tags = [src.tags(b) for b in (1, 2, 3)]
        assert_same_crs(src.crs, samples.GFS_CRS, [(10.0, 10.0), (-170.0, -60.0)])
        # GDAL re-wraps 0..360 to -180..180: column 0 is longitude 180 == -180
        assert_transform_close(src.transform, Affine(1.0, 0, -180.5, 0, -1.0, 90.5))
        back_u = src.read(2)
        t2 = src.read(1)
    assert [(t["GRIB_ELEMENT"], t["GRIB_SHORT_NAME"]) for t in tags] == [
        ("TMP", "2-HTGL"), ("UGRD", "10-HTGL"), ("VGRD", "10-HTGL")]
    assert tags[0]["GRIB_UNIT"] == "[C]"
    for t in tags:
        assert grib_time(t["GRIB_REF_TIME"]) == ts(REF)
        assert grib_time(t["GRIB_VALID_TIME"]) == ts(REF + timedelta(hours=3))
    np.testing.assert_allclose(back_u, np.roll(u, 180, axis=1), atol=0.006)
    assert -60 < t2.min() and t2.max() < 50

    with rasterio.Env(GRIB_ADJUST_LONGITUDE_RANGE="NO"):
        with rasterio.open(path) as src:
            assert_transform_close(src.transform, samples.gfs_transform(shape))
            np.testing.assert_allclose(src.read(2), u, atol=0.006)


def test_gfs_default_quarter_degree_transform() -> None:
    t = samples.gfs_transform()
    assert (t.a, t.e, t.c, t.f) == (0.25, -0.25, -0.125, 90.125)


# --------------------------------------------------------------------------- NetCDF


@pytest.mark.parametrize("crs, shape", [
    ("latlon", (35, 70)),
    ("polar_stereographic", (90, 90)),
    ("lambert_conformal", (50, 80)),
])
@pytest.mark.parametrize("y_ascending", [True, False])
def test_netcdf_cf_round_trip(tmp_path: Path, crs: str, shape: tuple[int, int], y_ascending: bool) -> None:
    values = np.arange(shape[0] * shape[1], dtype=np.float32).reshape(shape) / 10.0
    values[0, 0] = np.nan
    values[1, 1] = -999.0
    path = files.write_netcdf_cf(tmp_path / f"{crs}.nc", values, VALID, crs=crs, var_name="DBZH",
                                   units="dBZ", y_ascending=y_ascending)
    with rasterio.open(path) as src:
        assert src.driver == "netCDF"
        assert src.count == 1 and src.shape == shape
        assert src.nodata == -999.0
        assert_same_crs(src.crs, files.netcdf_crs(crs), [(10.0, 52.0), (-97.5, 38.5), (-100.0, 30.0)])
        assert_transform_close(src.transform, files.default_netcdf_transform(crs, shape), tol_fraction=1e-6)
        back = src.read(1)
        tags = src.tags()
        btags = src.tags(1)
    assert back[0, 0] == -999.0  # NaN -> _FillValue
    np.testing.assert_array_equal(back.ravel()[2:], values.ravel()[2:])
    assert int(float(btags["NETCDF_DIM_time"])) == ts(VALID)
    assert tags["time#units"] == "seconds since 1970-01-01 00:00:00"
    assert tags["NC_GLOBAL#Conventions"] == "CF-1.8"
    assert btags["units"] == "dBZ" and btags["grid_mapping"] == "crs"


def test_netcdf_radolan_grid_mapping_attributes(tmp_path: Path) -> None:
    import netCDF4

    path = files.write_netcdf_cf(tmp_path / "rw.nc", np.zeros((900, 900), np.float32), VALID,
                                   crs="polar_stereographic", var_name="RW", units="mm",
                                   standard_name="lwe_thickness_of_precipitation_amount", with_crs_wkt=True)
    with netCDF4.Dataset(path) as nc:
        gm = nc["crs"]
        assert gm.grid_mapping_name == "polar_stereographic"
        assert gm.straight_vertical_longitude_from_pole == 10.0
        assert gm.standard_parallel == 60.0
        assert gm.latitude_of_projection_origin == 90.0
        assert gm.earth_radius == 6370040.0
        assert "crs_wkt" in gm.ncattrs()
        assert nc["RW"].dimensions == ("time", "y", "x")
        assert nc["RW"]._FillValue == np.float32(-999.0)
        assert nc["time"].units == "seconds since 1970-01-01 00:00:00"
    with rasterio.open(path) as src:
        # the RADOLAN RW grid: 900 x 900 km, lower-left corner (-523462.2, -4658645.0)
        assert src.bounds == pytest.approx((-523462.2, -4658645.0, 376537.8, -3758645.0), abs=1e-3)
        # its corners are where DWD documents them (within a few hundred metres)
        lon, lat = Transformer.from_crs(src.crs, "EPSG:4326", always_xy=True).transform(-523462.2, -4658645.0)
    assert (lon, lat) == pytest.approx((3.5889, 46.9526), abs=0.01)


def test_netcdf_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        files.write_netcdf_cf(tmp_path / "x.nc", np.zeros((2, 2)), VALID, crs="mercator")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        files.write_netcdf_cf(tmp_path / "x.nc", np.zeros((2, 2)), VALID, transform=Affine(1, 0, 0, 0, 1, 0))


# --------------------------------------------------------------------------- GeoTIFF


def test_geotiff_round_trip(tmp_path: Path) -> None:
    values = np.linspace(-10, 60, 300 * 400, dtype=np.float32).reshape(300, 400)
    values[5, 5] = np.nan
    transform = Affine(0.01, 0, -100.0, 0, -0.01, 40.0)
    path = files.write_geotiff(tmp_path / "r.tif", values, "EPSG:4326", transform, nodata=-999.0,
                                 tags={"valid_time": "2024-05-01T12:34:36Z"}, band_tags={"units": "dBZ"})
    with rasterio.open(path) as src:
        assert src.crs == rasterio.crs.CRS.from_epsg(4326)
        assert src.transform == transform
        assert src.nodata == -999.0
        assert src.block_shapes == [(256, 256)]
        assert src.tags()["valid_time"] == "2024-05-01T12:34:36Z"
        assert src.tags(1)["units"] == "dBZ"
        back = src.read(1)
    assert back[5, 5] == -999.0
    mask = np.isfinite(values)
    np.testing.assert_array_equal(back[mask], values[mask])


def test_geotiff_multiband_integer(tmp_path: Path) -> None:
    stack = np.arange(2 * 10 * 20, dtype=np.uint8).reshape(2, 10, 20)
    path = files.write_geotiff(tmp_path / "m.tif", stack, samples.HRRR_CRS, samples.hrrr_transform((10, 20)), nodata=255)
    with rasterio.open(path) as src:
        assert src.count == 2 and src.dtypes == ("uint8", "uint8")
        np.testing.assert_array_equal(src.read(), stack)
        assert_same_crs(src.crs, samples.HRRR_CRS, [(-97.5, 38.5)])


def test_lead_must_be_whole_minutes(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        samples.write_gfs_grib2(tmp_path / "x.grib2", REF, timedelta(seconds=90), shape=(19, 36))
    with pytest.raises(ValueError):
        samples.write_gfs_grib2(tmp_path / "x.grib2", REF, timedelta(hours=-1), shape=(19, 36))
