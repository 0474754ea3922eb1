"""Parsing and validation of colormap definitions (the JSON data files and to_json() output)."""

import math
import re
from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from .colors import RGBA, format_color, parse_color
from .errors import ColormapDefinitionError

ColormapType = Literal["interval", "continuous"]
TYPES: tuple[ColormapType, ...] = ("interval", "continuous")

# Names end up in URLs (/api/colormaps/{name}) and file names, so keep them slug-like.
NAME_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

_REQUIRED_KEYS = {"name", "title", "units", "type", "stops"}
# "normalized" is accepted because to_json() emits it; it must agree with units.
_OPTIONAL_KEYS = {"below", "above", "normalized"}


class Fields(TypedDict):
    """Keyword arguments for the Colormap dataclass."""

    name: str
    title: str
    units: str | None
    type: ColormapType
    stops: tuple[tuple[float, RGBA], ...]
    below: RGBA | None
    above: RGBA | None


def parse_definition(data: Mapping[str, Any]) -> Fields:
    """Validate a definition dict and convert it to Colormap constructor fields.

    Unknown keys are rejected: a misspelt "bellow" would otherwise silently
    fall back to the default and change what the map renders.
    """
    if not isinstance(data, Mapping):
        raise ColormapDefinitionError(f"definition must be an object, got {type(data).__name__}")
    label = data.get("name", "<unnamed>")
    keys = set(data)
    if missing := _REQUIRED_KEYS - keys:
        raise ColormapDefinitionError(f"{label}: missing keys {sorted(missing)}")
    if unknown := keys - _REQUIRED_KEYS - _OPTIONAL_KEYS:
        raise ColormapDefinitionError(f"{label}: unknown keys {sorted(unknown)}")

    name, title, units, kind = data["name"], data["title"], data["units"], data["type"]
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ColormapDefinitionError(f"{label}: name must be a lowercase slug, got {name!r}")
    if not isinstance(title, str) or not title.strip():
        raise ColormapDefinitionError(f"{name}: title must be a non-empty string")
    if units is not None and (not isinstance(units, str) or not units.strip()):
        raise ColormapDefinitionError(f"{name}: units must be a non-empty string or null")
    if kind not in TYPES:
        raise ColormapDefinitionError(f"{name}: type must be one of {TYPES}, got {kind!r}")
    if "normalized" in data and data["normalized"] is not (units is None):
        raise ColormapDefinitionError(
            f"{name}: normalized={data['normalized']!r} contradicts units={units!r}"
        )

    try:
        return Fields(
            name=name,
            title=title,
            units=units,
            type=kind,
            stops=_parse_stops(data["stops"]),
            below=_parse_optional_color(data.get("below")),
            above=_parse_optional_color(data.get("above")),
        )
    except ValueError as exc:
        raise ColormapDefinitionError(f"{name}: {exc}") from exc


def dump_definition(fields: Fields) -> dict[str, Any]:
    """The JSON-ready form of a colormap; parse_definition() reads it back unchanged."""
    return {
        "name": fields["name"],
        "title": fields["title"],
        "units": fields["units"],
        "type": fields["type"],
        "stops": [{"value": value, "color": format_color(rgba)} for value, rgba in fields["stops"]],
        "below": None if fields["below"] is None else format_color(fields["below"]),
        "above": None if fields["above"] is None else format_color(fields["above"]),
        "normalized": fields["units"] is None,
    }


def _parse_stops(raw: Any) -> tuple[tuple[float, RGBA], ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("stops must be a non-empty list")
    stops = []
    for i, stop in enumerate(raw):
        if not isinstance(stop, Mapping) or set(stop) != {"value", "color"}:
            raise ValueError(f"stop {i} must be an object with exactly 'value' and 'color'")
        value = stop["value"]
        # bool is an int subclass; true/false in a data file is always a mistake.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"stop {i} value must be a finite number, got {value!r}")
        stops.append((float(value), parse_color(stop["color"])))
    return tuple(stops)


def _parse_optional_color(raw: Any) -> RGBA | None:
    return None if raw is None else parse_color(raw)
