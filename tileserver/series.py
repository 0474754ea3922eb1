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
    with open(out, "wb") as handle:
        handle.write(HEADER.pack(MAGIC, dtype.encode(), width, height, CHUNK, nodata))
        handle.write(b"".join(entries))
        for blob in blobs:
            handle.write(blob)


def index_range(grid: SeriesGrid, col: int, row: int) -> tuple[int, int]:
    """Byte range of the index entry of the chunk holding (col, row)."""
    chunk = (row // CHUNK) * math.ceil(grid.width / CHUNK) + col // CHUNK
    return HEADER.size + ENTRY.size * chunk, ENTRY.size


def decode_entry(entry: bytes) -> tuple[int, int, int]:
    return ENTRY.unpack(entry)


def value_in_chunk(blob: bytes, dtype: str, col: int, row: int) -> int:
    codes = np.frombuffer(zlib.decompress(blob), dtype=DTYPES[dtype])
    return int(codes[(row % CHUNK) * CHUNK + col % CHUNK])
