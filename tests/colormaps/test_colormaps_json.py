import json
import re

import pytest

import colormaps
from colormaps import Colormap

HEX8 = re.compile(r"^#[0-9a-f]{8}$")


@pytest.mark.parametrize("name", colormaps.names())
def test_to_json_round_trip(name: str) -> None:
    cmap = colormaps.get(name)
    described = cmap.to_json()
    assert set(described) == {"name", "title", "units", "type", "stops", "below", "above", "normalized"}
    # Through real JSON text, as an HTTP client would see it.
    again = Colormap.from_dict(json.loads(json.dumps(described)))
    assert again == cmap
    assert again.to_json() == described


@pytest.mark.parametrize("name", colormaps.names())
def test_to_json_fields(name: str) -> None:
    cmap = colormaps.get(name)
    described = cmap.to_json()
    assert described["name"] == name
    assert described["normalized"] is (cmap.units is None)
    assert described["type"] == cmap.type
    assert [s["value"] for s in described["stops"]] == [v for v, _ in cmap.stops]
    for stop in described["stops"]:
        assert HEX8.match(stop["color"])
    for key in ("below", "above"):
        assert described[key] is None or HEX8.match(described[key])


def test_nws_json_states_its_defaults() -> None:
    described = colormaps.get("nws-reflectivity").to_json()
    assert described["units"] == "dBZ"
    assert described["below"] == "#00000000"
    assert described["above"] is None
    assert described["stops"][0] == {"value": 5.0, "color": "#04e9e7ff"}
    assert described["stops"][9] == {"value": 50.0, "color": "#fd0000ff"}


def test_to_json_returns_fresh_data() -> None:
    cmap = colormaps.get("temperature")
    cmap.to_json()["stops"].clear()
    assert len(cmap.to_json()["stops"]) == len(cmap.stops)
