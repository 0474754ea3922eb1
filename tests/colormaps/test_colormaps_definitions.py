import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

import colormaps
from colormaps import Colormap
from colormaps.colors import format_color, parse_color
from colormaps.errors import ColormapDefinitionError

DATA_DIR = Path(colormaps.__file__).parent / "data"
FILES = sorted(DATA_DIR.glob("*.json"))
COLOR = re.compile(r"^#[0-9a-f]{6}([0-9a-f]{2})?$")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_data_file_is_valid(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["name"] == path.stem
    assert set(data) <= {"name", "title", "units", "type", "stops", "below", "above"}
    assert data["type"] in ("interval", "continuous")
    assert data["units"] is None or isinstance(data["units"], str)
    values = [stop["value"] for stop in data["stops"]]
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
    assert values == sorted(values) and len(set(values)) == len(values)
    for stop in data["stops"]:
        assert set(stop) == {"value", "color"}
        assert COLOR.match(stop["color"]), stop["color"]
    for key in ("below", "above"):
        if key in data:
            assert COLOR.match(data[key]), data[key]
    if data["units"] is None:
        assert values[0] == 0 and values[-1] == 1
    Colormap.from_dict(data)  # must not raise


def test_expected_units() -> None:
    units = {name: colormaps.get(name).units for name in colormaps.names()}
    assert units["nws-reflectivity"] == units["reflectivity-smooth"] == "dBZ"
    assert units["precip-rate"] == "mm/h"
    assert units["temperature"] == "degC"
    assert units["wind-speed"] == "m/s"
    for name in ("viridis", "magma", "inferno", "plasma", "cividis"):
        assert units[name] is None


def test_temperature_spans_minus_40_to_45_and_is_white_near_zero() -> None:
    cmap = colormaps.get("temperature")
    assert cmap.stops[0][0] == -40 and cmap.stops[-1][0] == 45
    r, g, b, _ = cmap.rgba(0.0)
    assert min(r, g, b) >= 230
    cold, hot = cmap.rgba(-35.0), cmap.rgba(35.0)
    assert cold[2] > cold[0]  # bluish/purple
    assert hot[0] > hot[2]  # reddish


def test_precip_rate_classes() -> None:
    cmap = colormaps.get("precip-rate")
    assert [v for v, _ in cmap.stops] == [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 50, 100]
    assert cmap.is_discrete
    assert tuple(cmap.rgba(0.09)) == (0, 0, 0, 0)


def test_wind_speed_covers_0_to_40() -> None:
    cmap = colormaps.get("wind-speed")
    assert cmap.stops[0][0] == 0 and cmap.stops[-1][0] == 40
    assert cmap.rgba(0.0)[3] == 255


VALID: dict[str, Any] = {
    "name": "test-map",
    "title": "Test",
    "units": "dBZ",
    "type": "interval",
    "stops": [{"value": 0, "color": "#000000"}, {"value": 10, "color": "#ffffff"}],
}


def _variant(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    for key, value in changes.items():
        if value is KeyError:
            del data[key]
        else:
            data[key] = value
    return data


def _stops(*pairs: tuple[Any, Any]) -> list[dict[str, Any]]:
    return [{"value": v, "color": c} for v, c in pairs]


@pytest.mark.parametrize(
    "data",
    [
        _variant(title=KeyError),
        _variant(bellow="#000000"),
        _variant(name="Bad Name"),
        _variant(name="bad/name"),
        _variant(title=""),
        _variant(units=""),
        _variant(type="stepped"),
        _variant(stops=[]),
        _variant(stops=_stops((10, "#000000"), (0, "#ffffff"))),
        _variant(stops=_stops((0, "#000000"), (0, "#ffffff"))),
        _variant(stops=_stops((0, "#fff"))),
        _variant(stops=_stops((0, "#gggggg"))),
        _variant(stops=_stops((0, "black"))),
        _variant(stops=_stops((0, [0, 0, 0]))),
        _variant(stops=_stops((True, "#000000"))),
        _variant(stops=_stops(("5", "#000000"))),
        _variant(stops=_stops((math.nan, "#000000"))),
        _variant(stops=_stops((math.inf, "#000000"))),
        _variant(stops=[{"value": 0, "color": "#000000", "label": "x"}]),
        _variant(above="#ff0000"),  # interval maps express "above" as a final stop
        _variant(below="#12345"),
        _variant(type="continuous", stops=_stops((0, "#000000"))),
        _variant(units=None, stops=_stops((0, "#000000"), (2, "#ffffff"))),
        _variant(normalized=True),  # contradicts units "dBZ"
        _variant(stops=_stops(*((i, "#000000") for i in range(255)))),  # palette overflow
        ["not", "an", "object"],
    ],
)
def test_invalid_definitions_are_rejected(data: Any) -> None:
    with pytest.raises(ColormapDefinitionError):
        Colormap.from_dict(data)


def test_definition_error_is_value_error_naming_the_map() -> None:
    with pytest.raises(ValueError, match="test-map"):
        Colormap.from_dict(_variant(stops=_stops((1, "#000000"), (0, "#ffffff"))))


def test_defaults_resolved() -> None:
    interval = Colormap.from_dict(VALID)
    assert interval.below == (0, 0, 0, 0) and interval.above is None
    continuous = Colormap.from_dict(_variant(type="continuous"))
    assert continuous.below is None and continuous.above is None


def test_direct_construction_is_validated_and_hashable() -> None:
    cmap = Colormap("x", "X", "m/s", "continuous", [(0, [0, 0, 0, 255]), (1, (9, 9, 9, 255))])  # type: ignore[arg-type]
    assert cmap.stops == ((0.0, (0, 0, 0, 255)), (1.0, (9, 9, 9, 255)))
    assert hash(cmap) == hash(Colormap.from_dict(cmap.to_json()))
    with pytest.raises(ValueError):
        Colormap("x", "X", "m/s", "continuous", ((0.0, (0, 0, 0, 256)), (1.0, (0, 0, 0, 0))))
    with pytest.raises(ValueError):
        Colormap("x", "X", "m/s", "gradient", ((0.0, (0, 0, 0, 0)), (1.0, (0, 0, 0, 0))))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "rgba"),
    [("#04e9e7", (4, 233, 231, 255)), ("#FD000080", (253, 0, 0, 128)), ("#00000000", (0, 0, 0, 0))],
)
def test_parse_color(text: str, rgba: tuple[int, int, int, int]) -> None:
    assert parse_color(text) == rgba
    assert format_color(rgba) == text.lower() + ("ff" if len(text) == 7 else "")
