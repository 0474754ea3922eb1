"""wgrib2 inventories (``.idx``) and the byte ranges of the GRIB messages they list.

An inventory line is ``n:offset:d=YYYYMMDDHH:VAR:LEVEL:FCST:`` (sometimes with
more fields after FCST). A message runs from its offset to the next larger
offset; the last one to the end of the object. Sub-messages (``5.1``, ``5.2``)
share one offset and so one message.

Layers find their fields by GDAL's names (``GRIB_ELEMENT`` = VAR, and
``GRIB_SHORT_NAME`` such as ``2-HTGL``); :func:`level_short_name` turns the
inventory's level text (``2 m above ground``) into that short name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from tileserver.core.layers import Layer


class IdxError(ValueError):
    """The inventory cannot be parsed."""


class MissingFieldError(LookupError):
    """The inventory does not list a field a layer needs."""


@dataclass(frozen=True)
class IdxEntry:
    number: str  # "5", or "5.1" for a sub-message
    offset: int
    date: str  # "2026112718" (the run)
    variable: str  # "TMP"
    level: str  # "2 m above ground"
    forecast: str  # "anl", "3 hour fcst", "0-3 hour acc fcst"
    extra: tuple[str, ...] = ()

    @property
    def short_name(self) -> str | None:
        return level_short_name(self.level)

    @property
    def run(self) -> datetime | None:
        try:
            return datetime.strptime(self.date[:10], "%Y%m%d%H").replace(tzinfo=timezone.utc)
        except ValueError:
            return None

    @property
    def instantaneous(self) -> bool:
        return self.forecast == "anl" or re.fullmatch(r"\d+ (?:hour|min|day) fcst", self.forecast) is not None

    def describe(self) -> str:
        return f"{self.variable}:{self.level}"


def parse_idx(text: str) -> list[IdxEntry]:
    entries: list[IdxEntry] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(":")
        if len(parts) < 6 or not parts[1].isdigit() or not parts[2].startswith("d="):
            raise IdxError(f"line {lineno} is not a wgrib2 inventory line: {line[:80]!r}")
        number, offset, date, variable, level, forecast, *extra = parts
        entries.append(IdxEntry(number, int(offset), date[2:], variable, level, forecast, tuple(p for p in extra if p)))
    if not entries:
        raise IdxError("the inventory is empty")
    return entries


# Inventory level text -> GDAL GRIB_SHORT_NAME (value-SURFACE, code table 4.5 abbreviations).
_FIXED_LEVELS = {
    "surface": "0-SFC",
    "entire atmosphere": "0-EATM",
    "entire atmosphere (considered as a single layer)": "0-EATM",
    "mean sea level": "0-MSL",
    "cloud base": "0-CBL",
    "cloud top": "0-CTL",
    "tropopause": "0-TRO",
    "max wind": "0-MWSL",
    "0c isotherm": "0-0DEG",
    "top of atmosphere": "0-NTAT",
}
_LEVEL_PATTERNS = (
    (re.compile(r"^(\d+(?:\.\d+)?) m above ground$"), "HTGL", 1.0),
    (re.compile(r"^(\d+(?:\.\d+)?) m above mean sea level$"), "GPML", 1.0),
    (re.compile(r"^(\d+(?:\.\d+)?) mb$"), "ISBL", 100.0),  # GDAL names pressure levels in Pa
    (re.compile(r"^(\d+(?:\.\d+)?) k \(isentropic level\)$", re.IGNORECASE), "ISEN", 1.0),
)


def level_short_name(level: str) -> str | None:
    """``"2 m above ground"`` -> ``"2-HTGL"``, ``"500 mb"`` -> ``"50000-ISBL"``,
    ``"entire atmosphere"`` -> ``"0-EATM"``; None for levels without a mapping."""
    text = level.strip().lower()
    if text in _FIXED_LEVELS:
        return _FIXED_LEVELS[text]
    for pattern, surface, factor in _LEVEL_PATTERNS:
        match = pattern.match(text)
        if match:
            value = float(match.group(1)) * factor
            return f"{value:g}-{surface}" if value != int(value) else f"{int(value)}-{surface}"
    return None


@dataclass(frozen=True, order=True)
class ByteRange:
    start: int
    end: int | None  # exclusive; None = to the end of the object

    @property
    def length(self) -> int | None:
        return None if self.end is None else self.end - self.start

    @property
    def header(self) -> str:
        return f"bytes={self.start}-" + ("" if self.end is None else str(self.end - 1))


def message_range(entries: Sequence[IdxEntry], entry: IdxEntry) -> ByteRange:
    """The bytes of ``entry``'s message: to the next larger offset, or the object's end."""
    later = [e.offset for e in entries if e.offset > entry.offset]
    return ByteRange(entry.offset, min(later) if later else None)


def merge_ranges(ranges: Iterable[ByteRange]) -> list[ByteRange]:
    """Sorted, deduplicated, with touching or overlapping ranges joined (one request each)."""
    merged: list[ByteRange] = []
    for current in sorted(set(ranges), key=lambda r: (r.start, r.end is None, r.end or 0)):
        if merged:
            last = merged[-1]
            if last.end is None or current.start <= last.end:
                end = None if last.end is None or current.end is None else max(last.end, current.end)
                merged[-1] = ByteRange(last.start, end)
                continue
        merged.append(current)
    return merged


def find_field(entries: Sequence[IdxEntry], variable: str, levels: Sequence[str]) -> IdxEntry | None:
    """The first message of ``variable`` at one of ``levels`` (GDAL short names; empty =
    any level), preferring instantaneous values over averages and accumulations."""
    matches = [e for e in entries if e.variable == variable and (not levels or e.short_name in levels)]
    for entry in matches:
        if entry.instantaneous:
            return entry
    return matches[0] if matches else None


def fields_for_layer(entries: Sequence[IdxEntry], layer: Layer) -> list[IdxEntry]:
    """The messages a layer reads, chosen the way :mod:`ingest.decode` picks bands.

    A vector layer takes the first component pair the inventory lists in full,
    else a field of its own; others the first of their elements (in order of
    preference) that the inventory lists. Raises :class:`MissingFieldError`.
    """
    selector = layer.selector
    partial: list[str] = []
    for pair in selector.grib_components:
        found = [find_field(entries, match.element, match.levels) for match in pair]
        if all(found):
            return found  # type: ignore[return-value]
        if any(found) and not partial:
            partial = [str(match) for match, entry in zip(pair, found) if entry is None]
    for match in selector.grib:
        entry = find_field(entries, match.element, match.levels)
        if entry is not None:
            return [entry]
    # Half a component pair is the likeliest mistake (a truncated inventory): name what is missing.
    wanted = partial or [str(m) for m in (*[pair[0] for pair in selector.grib_components], *selector.grib)]
    raise MissingFieldError(f"the .idx lists no {' or '.join(wanted) or 'field'}")


def is_grib_layer(layer: Layer) -> bool:
    """Layers a model fetcher can fill: forecasts with GRIB element names to look for."""
    return layer.kind == "forecast" and bool(layer.selector.grib_components or layer.selector.grib)
