"""Unit conversion of source fields into a layer's units."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ingest.errors import IngestError

# Spellings seen in GRIB (GDAL's GRIB_UNIT, e.g. "[C]") and CF NetCDF ``units``.
_ALIASES: dict[str, str] = {
    "k": "K", "kelvin": "K",
    "c": "degC", "degc": "degC", "celsius": "degC", "deg_c": "degC", "degrees_celsius": "degC",
    "m/s": "m/s", "m s-1": "m/s", "m s**-1": "m/s", "m.s-1": "m/s", "ms-1": "m/s",
    "dbz": "dBZ", "db": "dBZ", "dbz(z)": "dBZ",
    "mm/h": "mm/h", "mm/hr": "mm/h", "mm h-1": "mm/h", "mm hr-1": "mm/h", "mm/hour": "mm/h",
    "kg/(m^2 s)": "kg m-2 s-1", "kg m-2 s-1": "kg m-2 s-1", "kg/m^2/s": "kg m-2 s-1", "mm s-1": "kg m-2 s-1", "mm/s": "kg m-2 s-1",
}

_CONVERSIONS: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {
    ("K", "degC"): lambda v: v - np.float32(273.15),
    # 1 kg of water per m^2 is 1 mm; per second to per hour.
    ("kg m-2 s-1", "mm/h"): lambda v: v * np.float32(3600.0),
}


def canonical_unit(text: str) -> str:
    cleaned = text.strip().strip("[]").strip().lower()
    return _ALIASES.get(cleaned, text.strip().strip("[]").strip())


def convert(values: np.ndarray, source_unit: str | None, target_unit: str, what: str) -> np.ndarray:
    """Convert ``values`` to ``target_unit``; a field without units is taken as already in it."""
    if not source_unit:
        return values
    unit = canonical_unit(source_unit)
    if unit == target_unit:
        return values
    try:
        return _CONVERSIONS[(unit, target_unit)](values)
    except KeyError:
        raise IngestError(f"{what} is in {source_unit!r}, which wxtiles cannot convert to {target_unit}") from None
