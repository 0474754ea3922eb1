"""The direct decoder of PNG-packed GRIB2 (ingest.grib_png) against GDAL's.

The truth is the GDAL path of ``read_field`` (the direct decoder switched off)
on the same real files: the same codes cell for cell, the same no-coverage and
no-echo cells, the same CRS, transform, time and description.
"""

from __future__ import annotations

import gzip
import io
import struct
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from ingest import cog, decode, grib_png
from ingest.demo import samples
from ingest.cog import build_cog, encode_in_blocks
from ingest.decode import SourceField, read_field
from ingest.errors import IngestError
from tileserver.core.layers import LAYERS

VALID = datetime(2026, 11, 27, 21, 40, tzinfo=timezone.utc)
SHAPE = (60, 230)


def product_values(product: str) -> np.ndarray:
    """Every 0.1 step of the product's range and beyond, plus its missing codes, in rows."""
    info = samples.MRMS_PRODUCTS[product]
    top = 99.0 if product.startswith("Merged") else 700.0
    steps = np.round(np.arange(-40.0, top, 0.1), 1)
    grid = np.resize(steps, SHAPE).astype(np.float32)
    grid[:4] = info.no_coverage
    grid[4:8] = info.missing
    grid[8:10, :50] = info.no_coverage  # and a ragged edge, so a row flip would show
    return grid


def gdal_field(path: Path, layer_id: str, monkeypatch: pytest.MonkeyPatch) -> SourceField:
    with monkeypatch.context() as patch:
        patch.setattr(decode, "_read_png_codes", lambda *args: None)
        return read_field(path, LAYERS[layer_id])


def codes_of(field: SourceField, layer_id: str) -> np.ndarray:
    return field.values if field.encoded else encode_in_blocks(field.values, LAYERS[layer_id].encoding)


@pytest.mark.parametrize("north_first", [False, True], ids=["south-first", "north-first"])
@pytest.mark.parametrize("suffix", [".grib2.gz", ".grib2"])
@pytest.mark.parametrize(("product", "layer_id"), [("MergedReflectivityQCComposite", "reflectivity"), ("PrecipRate", "precip-rate")])
def test_direct_decode_matches_gdal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, product: str, layer_id: str,
                                    suffix: str, north_first: bool) -> None:
    path = tmp_path / f"MRMS_{product}_00.50_20261127-214000{suffix}"
    samples.write_mrms_grib2(path, product_values(product), VALID, product=product, north_first=north_first)
    direct = read_field(path, LAYERS[layer_id])
    gdal = gdal_field(path, layer_id, monkeypatch)
    assert direct.encoded and not gdal.encoded
    expected = codes_of(gdal, layer_id)
    assert direct.values.dtype == expected.dtype
    np.testing.assert_array_equal(direct.values, expected)
    encoding = LAYERS[layer_id].encoding
    assert np.count_nonzero(expected == encoding.nodata) >= 4 * SHAPE[1]
    if encoding.no_echo is not None:
        assert np.count_nonzero(expected == encoding.no_echo) >= 4 * SHAPE[1]
    assert (direct.crs, direct.transform, direct.time, direct.run, direct.description) == (
        gdal.crs, gdal.transform, gdal.time, gdal.run, gdal.description)


def test_both_scan_orders_give_the_same_codes(tmp_path: Path) -> None:
    grid = product_values("MergedReflectivityQCComposite")
    south = samples.write_mrms_grib2(tmp_path / "south.grib2", grid, VALID)
    north = samples.write_mrms_grib2(tmp_path / "north.grib2", grid, VALID, north_first=True)
    fields = [read_field(path, LAYERS["reflectivity"], time=VALID) for path in (south, north)]
    np.testing.assert_array_equal(fields[0].values, fields[1].values)
    assert fields[0].transform == fields[1].transform


@pytest.mark.parametrize("packing", ["SIMPLE_PACKING", "COMPLEX_PACKING"])
def test_other_packings_fall_back_to_gdal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packing: str) -> None:
    path = tmp_path / "MRMS_MergedReflectivityQCComposite_00.50_20261127-214000.grib2"
    samples.write_mrms_grib2(path, product_values("MergedReflectivityQCComposite"), VALID, packing=packing)
    with path.open("rb") as stream:
        fields = grib_png.locate_fields(stream)
        assert fields is not None and len(fields) == 1
        assert grib_png.png_field(stream, fields[0]) is None
    field = read_field(path, LAYERS["reflectivity"])
    assert not field.encoded and field.values.dtype == np.float32
    np.testing.assert_array_equal(field.values, gdal_field(path, "reflectivity", monkeypatch).values)


def test_multi_message_model_file_falls_back_to_gdal(tmp_path: Path) -> None:
    path = samples.write_hrrr_grib2(tmp_path / "hrrr.t18z.wrfsfcf03.grib2", VALID, timedelta(hours=3), shape=(40, 60))
    field = read_field(path, LAYERS["reflectivity-model"])
    assert not field.encoded


def test_packed_values_follow_the_scaling() -> None:
    field = grib_png.PngField(rows=1, cols=1, south_to_north=False, first_longitude=0.0,
                              reference=np.float32(-9990.0), binary_scale=1, decimal_scale=1, bits=8, png=b"")
    values = grib_png.packed_values(field)
    assert values.dtype == np.float32 and values.shape == (256,)
    assert values[0] == np.float32(-999.0) and values[5] == np.float32(-998.0)


# --------------------------------------------------------------------------- corrupt files


@pytest.fixture
def message(tmp_path: Path) -> bytes:
    path = samples.write_mrms_grib2(tmp_path / "m.grib2", product_values("MergedReflectivityQCComposite"), VALID, north_first=True)
    return path.read_bytes()


def section_offsets(data: bytes) -> dict[int, int]:
    offsets, position = {}, 16
    while data[position:position + 4] != b"7777":
        length, number = struct.unpack_from(">IB", data, position)
        offsets[number] = position
        position += length
    return offsets


def decode_bytes(data: bytes) -> np.ndarray | None:
    stream = io.BytesIO(data)
    fields = grib_png.locate_fields(stream)
    if not fields:
        return None
    field = grib_png.png_field(stream, fields[0])
    return None if field is None else grib_png.packed_grid(field)


def corruptions(data: bytes) -> dict[str, bytes]:
    at = section_offsets(data)
    png = at[7] + 5
    total = len(data)
    cases = {
        "truncated in the PNG": data[: png + 200],
        "truncated before 7777": data[:-4],
        "PNG bytes zeroed": data[: png + 40] + bytes(200) + data[png + 240:],
        "PNG signature broken": data[:png] + b"XXXX" + data[png + 4:],
        "section 7 longer than the message": data[: at[7]] + struct.pack(">I", total) + data[at[7] + 4:],
        "section 5 length 3": data[: at[5]] + struct.pack(">I", 3) + data[at[5] + 4:],
        "section 3 too short": data[: at[3]] + struct.pack(">I", 20) + data[at[3] + 4:],
        "message length past the end": data[:8] + struct.pack(">Q", total + 100) + data[16:],
        "data points disagree": data[: at[5] + 5] + struct.pack(">I", 7) + data[at[5] + 9:],
        "PNG of 8 bits for 16": data[: at[5] + 19] + b"\x08" + data[at[5] + 20:],
    }
    return cases


def test_corrupt_sections_raise_ingest_errors(message: bytes) -> None:
    assert decode_bytes(message) is not None
    for name, data in corruptions(message).items():
        with pytest.raises(IngestError) as raised:
            decode_bytes(data)
        assert "\n" not in str(raised.value), name


@pytest.mark.parametrize("name", ["truncated in the PNG", "PNG bytes zeroed", "section 7 longer than the message",
                                  "section 5 length 3", "data points disagree", "PNG of 8 bits for 16"])
@pytest.mark.parametrize("gz", [False, True])
def test_corrupt_files_give_one_line(tmp_path: Path, message: bytes, name: str, gz: bool,
                                    capfd: pytest.CaptureFixture[str]) -> None:
    data = corruptions(message)[name]
    path = tmp_path / ("MRMS_MergedReflectivityQCComposite_00.50_20261127-214000.grib2" + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(IngestError) as raised:
        read_field(path, LAYERS["reflectivity"])
    assert str(raised.value) and "\n" not in str(raised.value)
    assert not capfd.readouterr().err  # nothing from OpenCV or libpng besides our line


def test_every_header_byte_flip_is_handled(message: bytes) -> None:
    """Any single corrupted byte in the section headers gives codes or an IngestError, never another exception."""
    at = section_offsets(message)
    positions = [p for number in (3, 5, 6, 7) for p in range(at[number], at[number] + (72 if number == 3 else 21 if number == 5 else 6))]
    for position in [*range(16), *positions]:
        for value in (0x00, 0xFF):
            data = message[:position] + bytes([value]) + message[position + 1:]
            try:
                decode_bytes(data)
            except IngestError as exc:
                assert "\n" not in str(exc)


def test_cog_from_codes_is_the_cog_from_floats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same digest and the same COG bytes whether the grid came as codes or floats, and with either in-memory source."""
    path = samples.write_mrms_grib2(tmp_path / "MRMS_MergedReflectivityQCComposite_00.50_20261127-214000.grib2.gz",
                                    product_values("MergedReflectivityQCComposite"), VALID, north_first=True)
    layer = LAYERS["reflectivity"]
    direct = build_cog(read_field(path, layer), layer, tmp_path / "direct.tif")
    gdal = build_cog(gdal_field(path, "reflectivity", monkeypatch), layer, tmp_path / "gdal.tif")
    monkeypatch.setattr(cog, "MemoryDataset", None)
    via_gtiff = build_cog(read_field(path, layer), layer, tmp_path / "gtiff.tif")
    assert direct.digest == gdal.digest == via_gtiff.digest
    assert direct.path.read_bytes() == gdal.path.read_bytes() == via_gtiff.path.read_bytes()
