import json
import subprocess
import sys
from pathlib import Path

import pytest

import colormaps
from colormaps import Colormap, UnknownColormapError

DATA_DIR = Path(colormaps.__file__).parent / "data"

EXPECTED = {
    "nws-reflectivity",
    "reflectivity-smooth",
    "precip-rate",
    "temperature",
    "wind-speed",
    "viridis",
    "magma",
    "inferno",
    "plasma",
    "cividis",
}


def test_names_lists_every_shipped_colormap_sorted() -> None:
    names = colormaps.names()
    assert set(names) == EXPECTED
    assert names == sorted(names)
    assert set(names) == {p.stem for p in DATA_DIR.glob("*.json")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_get_returns_the_named_colormap(name: str) -> None:
    cmap = colormaps.get(name)
    assert isinstance(cmap, Colormap)
    assert cmap.name == name
    assert cmap.title == json.loads((DATA_DIR / f"{name}.json").read_text())["title"]


def test_get_is_cached() -> None:
    assert colormaps.get("temperature") is colormaps.get("temperature")


def test_unknown_name_raises_readable_key_error() -> None:
    with pytest.raises(UnknownColormapError) as info:
        colormaps.get("no-such-map")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert message.startswith("unknown colormap 'no-such-map'")
    assert "viridis" in message  # lists what is available


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(UnknownColormapError, match="did you mean viridis"):
        colormaps.get("viridiss")


@pytest.mark.parametrize("bad", [None, 42, ["viridis"], ""])
def test_non_string_or_empty_names_raise_unknown(bad: object) -> None:
    with pytest.raises(UnknownColormapError):
        colormaps.get(bad)  # type: ignore[arg-type]


def test_unknown_error_caught_as_key_error() -> None:
    try:
        colormaps.get("nope")
    except KeyError as exc:
        assert exc.args == ("nope",)
    else:
        pytest.fail("no error raised")


def test_contract_exports() -> None:
    for name in ("Colormap", "get", "names", "UnknownColormapError", "RGBA"):
        assert hasattr(colormaps, name)
    assert colormaps.RGBA == tuple[int, int, int, int]


def test_runtime_does_not_import_rio_tiler() -> None:
    code = (
        "import sys, numpy as np, colormaps\n"
        "for n in colormaps.names():\n"
        "    m = colormaps.get(n)\n"
        "    m.rgba(np.arange(3.0), (0, 2) if m.normalized else None)\n"
        "    m.legend_png()\n"
        "assert 'rio_tiler' not in sys.modules, 'rio_tiler imported'\n"
    )
    root = Path(colormaps.__file__).parent.parent
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
