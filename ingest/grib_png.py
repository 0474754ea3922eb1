"""Read the packed integers of a PNG-packed GRIB2 field without GDAL.

MRMS publishes its grids with GRIB2 PNG packing (data representation template
5.41). GDAL's GRIB driver unpacks such a message into a float64 grid and passes
it through its block cache: about 7x the float32 size of the grid at peak. Here
we read only what we need from sections 3, 5, 6 and 7: the grid shape and scan
order, the scaling (R, E, D, bits) and the PNG stream, which OpenCV decodes into
the packed integers (uint16 for 16 bits). The caller maps every possible packed
integer to a code once (:func:`packed_values` gives their values) and never
holds a float grid.

This is no general GRIB2 decoder. Anything other than template 5.41 on a
regular lat/lon grid (3.0), without a bitmap, scanned west to east in rows,
returns None and GDAL decodes it. A 5.41 field whose sections are cut short or
inconsistent raises :class:`IngestError`.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import cv2
import numpy as np

from ingest.errors import IngestError

PNG_TEMPLATE = 41
LATLON_GRID_TEMPLATE = 0
NO_BITMAP = 255
# Flag table 3.4: bit 1 = rows run east to west, bit 2 = rows go south to north,
# bit 3 = columns are consecutive, bit 4 = alternate rows reverse.
SOUTH_TO_NORTH = 0x40
_UNSUPPORTED_SCAN = 0x80 | 0x20 | 0x10
# OpenCV decodes 1, 2 and 4-bit grey PNGs scaled up to 8 bits, and colour
# PNGs (24 and 32 bits) as BGR: only 8 and 16 bits give the packed integers as they are.
_PNG_DTYPES = {8: np.uint8, 16: np.uint16}
# Zero bytes after the last message that we still take for padding.
_MAX_PADDING = 1 << 16


@dataclass(frozen=True)
class FieldSections:
    """Where one field's sections start in the file."""

    grid: int
    representation: int
    bitmap: int
    data: int


@dataclass(frozen=True)
class PngField:
    rows: int
    cols: int
    south_to_north: bool
    first_longitude: float  # of the first grid point (its cell centre), degrees as stored
    reference: np.float32  # R
    binary_scale: int  # E
    decimal_scale: int  # D
    bits: int
    png: bytes


def locate_fields(stream: BinaryIO) -> list[FieldSections] | None:
    """The fields of a GRIB2 file in order (GDAL's bands); None if it is not plain GRIB2.

    Reads only message and section headers, so a 700 MB model file costs a few
    hundred small reads.
    """
    size = stream.seek(0, io.SEEK_END)
    fields: list[FieldSections] = []
    start = 0
    while start < size:
        header = _read_at(stream, start, 16)
        if header[:4] != b"GRIB":
            # Padding after the last message is common; anything else (GRIB1,
            # a WMO bulletin header) is GDAL's to read.
            return fields if fields and _is_padding(stream, start, size) else None
        if len(header) < 16 or header[7] != 2:
            return None
        (length,) = struct.unpack_from(">Q", header, 8)
        if length < 20 or start + length > size:
            raise IngestError("truncated GRIB2 message (its length runs past the end of the file)")
        fields.extend(_message_fields(stream, start, length))
        start += length
    return fields


def _is_padding(stream: BinaryIO, start: int, size: int) -> bool:
    return size - start <= _MAX_PADDING and not _read_at(stream, start, size - start).strip(b"\0 \r\n")


def _message_fields(stream: BinaryIO, start: int, length: int) -> Iterator[FieldSections]:
    latest: dict[int, int] = {}
    position, end = start + 16, start + length - 4
    while position < end:
        header = _read_at(stream, position, 5)
        if len(header) < 5 or position + 5 > end:
            raise IngestError("corrupt GRIB2 message: a section header runs past the message end")
        size, number = struct.unpack(">IB", header)
        if size < 5 or position + size > end or not 1 <= number <= 7:
            raise IngestError(f"corrupt GRIB2 message: section {number} at byte {position} has length {size}")
        latest[number] = position
        if number == 7:
            if not {3, 5, 6} <= latest.keys():
                raise IngestError("corrupt GRIB2 message: a data section without grid, representation or bitmap section")
            yield FieldSections(latest[3], latest[5], latest[6], latest[7])
        position += size
    if _read_at(stream, end, 4) != b"7777":
        raise IngestError("corrupt GRIB2 message: no end marker 7777")


def png_field(stream: BinaryIO, sections: FieldSections) -> PngField | None:
    """The PNG-packed field at ``sections``; None when it is not a field this module reads."""
    representation = _section(stream, sections.representation, 11)
    if struct.unpack_from(">H", representation, 9)[0] != PNG_TEMPLATE:
        return None
    grid = _section(stream, sections.grid, 14)
    # An optional list of row lengths (quasi-regular grids) or another grid template.
    if grid[10] != 0 or struct.unpack_from(">H", grid, 12)[0] != LATLON_GRID_TEMPLATE:
        return None
    bitmap = _section(stream, sections.bitmap, 6)
    if len(grid) < 72 or len(representation) < 21:
        raise IngestError("corrupt GRIB2 message: its grid or data representation section is too short")
    scan = grid[71]
    if scan & _UNSUPPORTED_SCAN or bitmap[5] != NO_BITMAP:
        return None
    cols, rows = struct.unpack_from(">II", grid, 30)
    (points,) = struct.unpack_from(">I", representation, 5)
    (reference,) = struct.unpack_from(">f", representation, 11)
    bits = representation[19]
    if points != rows * cols or rows == 0:
        raise IngestError(f"corrupt GRIB2 message: {points} data points for a {cols}x{rows} grid")
    if bits and bits not in _PNG_DTYPES:
        return None
    return PngField(
        rows=rows, cols=cols, south_to_north=bool(scan & SOUTH_TO_NORTH),
        first_longitude=struct.unpack_from(">I", grid, 50)[0] / 1e6,
        reference=np.float32(reference),
        binary_scale=_signed(struct.unpack_from(">H", representation, 15)[0]),
        decimal_scale=_signed(struct.unpack_from(">H", representation, 17)[0]),
        bits=bits, png=_section(stream, sections.data, 5)[5:],
    )


def _read_at(stream: BinaryIO, position: int, size: int) -> bytes:
    stream.seek(position)
    return stream.read(size)


def _section(stream: BinaryIO, start: int, minimum: int) -> bytes:
    (length,) = struct.unpack(">I", _read_at(stream, start, 4))
    data = _read_at(stream, start, length)
    if length < minimum or len(data) < length:
        raise IngestError(f"corrupt GRIB2 message: section at byte {start} is {length} bytes, too short")
    return data


def _signed(raw: int) -> int:
    """GRIB2 signed integers are sign and magnitude, not two's complement."""
    return -(raw & 0x7FFF) if raw & 0x8000 else raw


def packed_values(field: PngField) -> np.ndarray:
    """The value of every possible packed integer, as GDAL computes it.

    GDAL's g2clib does ``(R * 10^-D) + (2^E * 10^-D) * X`` in float32, with the
    two scales rounded to float32 first; doing the same here gives the very
    floats GDAL hands out, so codes made from them match the GDAL path bit for bit.
    """
    decimal = np.float32(10.0 ** -field.decimal_scale)
    binary_decimal = np.float32(2.0 ** field.binary_scale) * decimal
    reference = field.reference * decimal
    packed = np.arange(2 ** field.bits, dtype=np.float32)
    return reference + binary_decimal * packed


def packed_grid(field: PngField) -> np.ndarray:
    """The packed integers, rows as stored (south first when ``south_to_north``)."""
    if field.bits == 0:
        # A constant field: every point is the reference value, packed as 0.
        return np.zeros((field.rows, field.cols), dtype=np.uint8)
    image = _imdecode(field.png)
    if image is None:
        raise IngestError("corrupt GRIB2 message: its PNG data does not decode")
    if image.dtype != _PNG_DTYPES[field.bits] or image.size != field.rows * field.cols:
        raise IngestError(f"corrupt GRIB2 message: its PNG is {image.dtype} {image.shape}, not {field.bits}-bit {field.cols}x{field.rows}")
    return image.reshape(field.rows, field.cols)


def _imdecode(png: bytes) -> np.ndarray | None:
    """OpenCV's decode, None for a corrupt stream; OpenCV's own warning would be a second line on stderr."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        return cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    finally:
        cv2.utils.logging.setLogLevel(level)


def map_packed(packed: np.ndarray, table: np.ndarray, south_to_north: bool, block_rows: int = 256) -> np.ndarray:
    """``table[packed]`` with row 0 north, a block of rows at a time.

    Indexing with a uint16 grid makes numpy build an intp copy of the indices
    (8 bytes a cell); in blocks that copy stays small.
    """
    if south_to_north:
        packed = packed[::-1]
    out = np.empty(packed.shape, dtype=table.dtype)
    for start in range(0, packed.shape[0], block_rows):
        # mode="clip" lets numpy write into ``out`` directly; every index is in range anyway.
        np.take(table, packed[start:start + block_rows], out=out[start:start + block_rows], mode="clip")
    return out
