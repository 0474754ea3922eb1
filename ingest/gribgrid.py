"""Why GDAL cannot georeference a GRIB file, read from the first message's grid section.

GDAL opens only regular grids. ECMWF's reduced (quasi-regular) Gaussian grids,
whose rows have different numbers of points, and spectral fields fail in GDAL
with a message that says nothing of the cause; this names it.
"""

from __future__ import annotations

from pathlib import Path

_REGRID = "regrid it to a regular lat/lon grid first (for example `cdo -R remapbil,r1440x721 in.grib out.grib` or ecCodes/MIR) and ingest that"


def grid_problem(path: Path) -> str | None:
    """One line on why the file's first GRIB message has no regular grid, or None."""
    try:
        with path.open("rb") as stream:
            head = stream.read(64 * 1024)
    except OSError:
        return None
    start = head.find(b"GRIB")
    if start < 0 or len(head) < start + 8:
        return None
    edition = head[start + 7]
    if edition == 1:
        return _grib1(head, start)
    if edition == 2:
        return _grib2(head, start)
    return None


def _describe(kind: str, gaussian: bool) -> str:
    grid = "a reduced Gaussian grid" if gaussian else "a reduced (quasi-regular) lat/lon grid"
    return f"is a GRIB{kind} field on {grid}, whose rows have different numbers of points; GDAL cannot georeference it, so it cannot be served faithfully: {_REGRID}"


def _grib1(head: bytes, start: int) -> str | None:
    pds = start + 8
    if len(head) < pds + 8:
        return None
    pds_length = int.from_bytes(head[pds:pds + 3], "big")
    if not head[pds + 7] & 0x80:
        return None  # no grid section
    gds = pds + pds_length
    if len(head) < gds + 8:
        return None
    representation = head[gds + 5]
    points_per_row = int.from_bytes(head[gds + 6:gds + 8], "big")
    if representation in (50, 60, 70, 80):
        return f"is a GRIB1 field in spherical harmonics (spectral), not on a grid; {_REGRID}"
    if representation in (0, 4) and points_per_row == 0xFFFF:
        return _describe("1", representation == 4)
    return None


def _grib2(head: bytes, start: int) -> str | None:
    offset = start + 16
    while offset + 5 <= len(head):
        length = int.from_bytes(head[offset:offset + 4], "big")
        number = head[offset + 4]
        if number == 3:
            if offset + 34 > len(head):
                return None
            template = int.from_bytes(head[offset + 12:offset + 14], "big")
            list_octets = head[offset + 10]
            points_per_row = int.from_bytes(head[offset + 30:offset + 34], "big")
            if template in (50, 51, 52, 53):
                return f"is a GRIB2 field in spherical harmonics (spectral), not on a grid; {_REGRID}"
            if template in (0, 40) and (list_octets or points_per_row == 0xFFFFFFFF):
                return _describe("2", template == 40)
            return None
        if length < 5 or number > 8:
            return None
        offset += length
    return None
