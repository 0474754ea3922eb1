"""The point-series sidecar: a frame's full-resolution codes, chunked for one-pixel reads.

A COG is the right shape for tiles, but reading one pixel from 576 of them costs
576 dataset opens (about 5 ms each). Beside each observed frame, ingest writes
this sidecar (``{frame}.series.bin``), whose layout lets a reader find any
pixel with two small reads and no GDAL at all:

    header   64 bytes: b"WXS1", dtype (u1/u2/i2), width, height, chunk, nodata
    index    one (uint64 offset, uint32 length, int32 fill) per chunk, row-major
    chunks   zlib-compressed chunk x chunk codes, or nothing when uniform (fill)

Its cells are exactly the COG's full-resolution cells (same grid), so a series
value equals the tile and ``/point`` value at that place and time.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"WXS1"
CHUNK = 64
HEADER = struct.Struct("<4s2sxxIIIi40x")  # 64 bytes
ENTRY = struct.Struct("<QIi")  # 16 bytes
DTYPES = {"u1": np.uint8, "u2": np.uint16, "i2": np.int16}


@dataclass(frozen=True)
class SeriesGrid:
    """Where a sidecar's cells are: the COG's full-resolution grid (EPSG:3857)."""

    left: float
    top: float
    res: float
    width: int
    height: int

    def cell(self, x: float, y: float) -> tuple[int, int] | None:
        col = math.floor((x - self.left) / self.res)
        row = math.floor((self.top - y) / self.res)
        if 0 <= col < self.width and 0 <= row < self.height:
            return col, row
        return None

    def to_json(self) -> list[float]:
        return [self.left, self.top, self.res, self.width, self.height]

    @classmethod
    def from_json(cls, value: list[float]) -> SeriesGrid:
        left, top, res, width, height = value
        return cls(float(left), float(top), float(res), int(width), int(height))


def write_sidecar(codes: np.ndarray, nodata: int, out: Path) -> None:
    dtype = {np.dtype(v): k for k, v in DTYPES.items()}[codes.dtype]
    height, width = codes.shape
    rows, cols = math.ceil(height / CHUNK), math.ceil(width / CHUNK)
    entries: list[bytes] = []
    blobs: list[bytes] = []
    offset = HEADER.size + ENTRY.size * rows * cols
    for r in range(rows):
        for c in range(cols):
            block = codes[r * CHUNK : (r + 1) * CHUNK, c * CHUNK : (c + 1) * CHUNK]
            first = block.flat[0]
            if (block == first).all():
                # Most of a radar frame is uniform (no echo, no coverage): no bytes.
                entries.append(ENTRY.pack(0, 0, int(first)))
                continue
            padded = np.full((CHUNK, CHUNK), nodata, dtype=codes.dtype)
            padded[: block.shape[0], : block.shape[1]] = block
            blob = zlib.compress(padded.tobytes(), 1)
            entries.append(ENTRY.pack(offset, len(blob), 0))
            blobs.append(blob)
            offset += len(blob)
    _write(out, HEADER.pack(MAGIC, dtype.encode(), width, height, CHUNK, nodata), entries, blobs)


def _write(out: Path, header: bytes, entries: list[bytes], blobs: list[bytes]) -> None:
    """Sidecars and packs alike: header, fixed-size index, then the chunks' bytes."""
    with open(out, "wb") as handle:
        handle.write(header)
        handle.write(b"".join(entries))
        for blob in blobs:
            handle.write(blob)


def _entry_range(header_size: int, grid: SeriesGrid, col: int, row: int) -> tuple[int, int]:
    chunk = (row // CHUNK) * math.ceil(grid.width / CHUNK) + col // CHUNK
    return header_size + ENTRY.size * chunk, ENTRY.size


def index_range(grid: SeriesGrid, col: int, row: int) -> tuple[int, int]:
    """Byte range of the index entry of the chunk holding (col, row)."""
    return _entry_range(HEADER.size, grid, col, row)


def decode_entry(entry: bytes, frames: int = 1) -> tuple[int, int, int]:
    """(offset, length, fill) of a chunk; ValueError for a length no chunk of
    ``frames`` frames can have, which only a corrupt index gives (and which
    would otherwise be a read of gigabytes)."""
    offset, size, fill = ENTRY.unpack(entry)
    if size > frames * CHUNK * CHUNK * 2 * 2 + 64:  # twice the largest raw chunk: more than zlib ever adds
        raise ValueError(f"index entry names a {size}-byte chunk")
    return offset, size, fill


def value_in_chunk(blob: bytes, dtype: str, col: int, row: int) -> int:
    codes = np.frombuffer(zlib.decompress(blob), dtype=DTYPES[dtype])
    return int(codes[(row % CHUNK) * CHUNK + col % CHUNK])


# -- hour packs ----------------------------------------------------------------
#
# 48 hours of sidecars are still 576 objects. Once an hour is complete, its
# sidecars are rolled into one pack whose chunks hold every frame of the hour
# for that chunk (time-major: T x CHUNK x CHUNK codes), so a point series costs
# two small reads per hour instead of two per frame.

PACK_MAGIC = b"WXP1"
PACK_HEADER = struct.Struct("<4s2sxxIIIiI36x")  # 64 bytes: ..., frame count


def _chunks(data: bytes) -> tuple[str, int, int, int, list[np.ndarray | int]]:
    """A sidecar's chunks: arrays, or the fill value of a uniform chunk."""
    magic, dtype, width, height, chunk, nodata = HEADER.unpack_from(data)
    if magic != MAGIC or chunk != CHUNK:
        raise ValueError("not a wxtiles series sidecar")
    count = math.ceil(height / CHUNK) * math.ceil(width / CHUNK)
    out: list[np.ndarray | int] = []
    for i in range(count):
        offset, size, fill = ENTRY.unpack_from(data, HEADER.size + ENTRY.size * i)
        out.append(fill if size == 0 else np.frombuffer(zlib.decompress(data[offset : offset + size]), dtype=DTYPES[dtype.decode()]))
    return dtype.decode(), width, height, nodata, out


def write_pack(sidecars: list[bytes], out: Path) -> None:
    """Roll the sidecars of one hour (same grid, in time order) into a pack."""
    parsed = [_chunks(data) for data in sidecars]
    dtype, width, height, nodata, _ = parsed[0]
    if any(p[:4] != (dtype, width, height, nodata) for p in parsed):
        raise ValueError("sidecars of a pack must share one grid")
    frames = len(parsed)
    entries: list[bytes] = []
    blobs: list[bytes] = []
    offset = PACK_HEADER.size + ENTRY.size * len(parsed[0][4])
    for index in range(len(parsed[0][4])):
        column = [p[4][index] for p in parsed]
        if all(isinstance(c, int) for c in column) and len(set(column)) == 1:  # type: ignore[arg-type]
            entries.append(ENTRY.pack(0, 0, int(column[0])))  # type: ignore[arg-type]
            continue
        stack = np.stack([np.full(CHUNK * CHUNK, c, dtype=DTYPES[dtype]) if isinstance(c, int) else c for c in column])
        blob = zlib.compress(stack.tobytes(), 1)
        entries.append(ENTRY.pack(offset, len(blob), 0))
        blobs.append(blob)
        offset += len(blob)
    _write(out, PACK_HEADER.pack(PACK_MAGIC, dtype.encode(), width, height, CHUNK, nodata, frames), entries, blobs)


def pack_index_range(grid: SeriesGrid, col: int, row: int) -> tuple[int, int]:
    return _entry_range(PACK_HEADER.size, grid, col, row)


def values_in_pack_chunk(blob: bytes, dtype: str, frames: int, col: int, row: int) -> list[int]:
    codes = np.frombuffer(zlib.decompress(blob), dtype=DTYPES[dtype]).reshape(frames, CHUNK * CHUNK)
    return [int(v) for v in codes[:, (row % CHUNK) * CHUNK + col % CHUNK]]
