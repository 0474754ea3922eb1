"""Unit conversion of source fields into a layer's units."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ingest.errors import IngestError

# Spellings seen in GRIB (GDAL's GRIB_UNIT, e.g. "[K]"), CF/COARDS NetCDF ``units``
# and ODIM, mapped to one name per unit.
_ALIASES: dict[str, str] = {
    "k": "K", "kelvin": "K", "degk": "K", "deg_k": "K", "degrees_kelvin": "K",
    "c": "degC", "degc": "degC", "celsius": "degC", "deg_c": "degC", "degrees_celsius": "degC", "°c": "degC",
    "f": "degF", "degf": "degF", "fahrenheit": "degF", "deg_f": "degF", "degrees_fahrenheit": "degF",
    "m/s": "m/s", "m s-1": "m/s", "m s**-1": "m/s", "m.s-1": "m/s", "ms-1": "m/s", "m/sec": "m/s", "meter/sec": "m/s",
    "km/h": "km/h", "km h-1": "km/h", "kt": "kt", "kts": "kt", "knot": "kt", "knots": "kt",
    "dbz": "dBZ", "db": "dBZ", "dbz(z)": "dBZ",
    "mm/h": "mm/h", "mm/hr": "mm/h", "mm h-1": "mm/h", "mm hr-1": "mm/h", "mm/hour": "mm/h", "mm h**-1": "mm/h",
    "kg/(m^2 s)": "kg m-2 s-1", "kg m-2 s-1": "kg m-2 s-1", "kg/m^2/s": "kg m-2 s-1", "kg/(m^2*s)": "kg m-2 s-1",
    "kg m**-2 s**-1": "kg m-2 s-1", "mm s-1": "kg m-2 s-1", "mm/s": "kg m-2 s-1",
    "pa": "Pa", "pascal": "Pa", "pascals": "Pa", "hpa": "hPa", "mb": "hPa", "mbar": "hPa", "millibar": "hPa", "kpa": "kPa",
    "m": "m", "metre": "m", "meter": "m", "metres": "m", "meters": "m", "cm": "cm", "mm": "mm",
    "kg/(m^2)": "mm", "kg m-2": "mm", "kg m**-2": "mm", "kg/m^2": "mm",
    "%": "%", "percent": "%", "1": "1", "fraction": "1", "proportion": "1",
}

_CONVERSIONS: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {
    ("K", "degC"): lambda v: v - np.float32(273.15),
    ("degC", "K"): lambda v: v + np.float32(273.15),
    ("degF", "degC"): lambda v: (v - np.float32(32.0)) * np.float32(5.0 / 9.0),
    ("K", "degF"): lambda v: (v - np.float32(273.15)) * np.float32(1.8) + np.float32(32.0),
    ("degC", "degF"): lambda v: v * np.float32(1.8) + np.float32(32.0),
    ("m/s", "km/h"): lambda v: v * np.float32(3.6),
    ("m/s", "kt"): lambda v: v * np.float32(3600.0 / 1852.0),
    ("km/h", "m/s"): lambda v: v / np.float32(3.6),
    ("kt", "m/s"): lambda v: v * np.float32(1852.0 / 3600.0),
    # 1 kg of water per m^2 is 1 mm; per second to per hour.
    ("kg m-2 s-1", "mm/h"): lambda v: v * np.float32(3600.0),
    ("Pa", "hPa"): lambda v: v / np.float32(100.0),
    ("kPa", "hPa"): lambda v: v * np.float32(10.0),
    ("hPa", "Pa"): lambda v: v * np.float32(100.0),
    ("m", "mm"): lambda v: v * np.float32(1000.0),
    ("m", "cm"): lambda v: v * np.float32(100.0),
    ("cm", "m"): lambda v: v / np.float32(100.0),
    ("mm", "m"): lambda v: v / np.float32(1000.0),
    ("1", "%"): lambda v: v * np.float32(100.0),
    ("%", "1"): lambda v: v / np.float32(100.0),
}


def canonical_unit(text: str) -> str:
    cleaned = text.strip().strip("[]").strip().lower()
    return _ALIASES.get(cleaned, text.strip().strip("[]").strip())


def convert(values: np.ndarray, source_unit: str | None, target_unit: str, what: str) -> np.ndarray:
    """Convert ``values`` to ``target_unit``; a field without units is taken as already in it."""
    if not source_unit:
        return values
    unit = canonical_unit(source_unit)
    if unit == canonical_unit(target_unit):
        return values
    try:
        return _CONVERSIONS[(unit, canonical_unit(target_unit))](values)
    except KeyError:
        raise IngestError(f"{what} is in {source_unit!r}, which wxtiles cannot convert to {target_unit}") from None
