import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import colormaps
from colormaps import Colormap

INTERVAL = [n for n in colormaps.names() if colormaps.get(n).is_discrete]
CONTINUOUS = [n for n in colormaps.names() if not colormaps.get(n).is_discrete]


def test_shipped_maps_split_as_expected() -> None:
    assert {"nws-reflectivity", "precip-rate", "wind-speed"} <= set(INTERVAL)
    assert {"reflectivity-smooth", "temperature", "viridis"} <= set(CONTINUOUS)


def test_nws_palette_layout() -> None:
    cmap = colormaps.get("nws-reflectivity")
    palette = cmap.palette()
    assert len(palette) == 2 + 15
    assert palette[0] == (0, 0, 0, 0)  # no data
    assert palette[1] == (0, 0, 0, 0)  # below 5 dBZ
    assert palette[2] == (0x04, 0xE9, 0xE7, 255)
    assert palette[-1] == (0xFD, 0xFD, 0xFD, 255)
    idx = cmap.palette_index(np.array([np.nan, 4.9, 5.0, 52.0, 80.0]))
    assert idx.dtype == np.uint8
    assert idx.tolist() == [0, 1, 2, 11, 16]


@pytest.mark.parametrize("name", CONTINUOUS)
def test_continuous_maps_have_no_palette(name: str) -> None:
    cmap = colormaps.get(name)
    assert not cmap.is_discrete
    with pytest.raises(ValueError):
        cmap.palette()
    with pytest.raises(ValueError):
        cmap.palette_index(np.array([0.5]), (0, 1) if cmap.normalized else None)


def _edge_values(cmap: Colormap) -> list[float]:
    """Stop values and their nearest float neighbours on both sides."""
    out = []
    for value, _ in cmap.stops:
        out += [value, np.nextafter(value, -np.inf), np.nextafter(value, np.inf)]
    return out


def _check_consistent(cmap: Colormap, values: np.ndarray) -> None:
    palette = np.array(cmap.palette(), dtype=np.uint8)
    index = cmap.palette_index(values)
    assert index.shape == values.shape
    np.testing.assert_array_equal(palette[index], cmap.rgba(values))


@pytest.mark.parametrize("name", INTERVAL)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_palette_index_agrees_with_rgba(name: str, data: st.DataObject) -> None:
    cmap = colormaps.get(name)
    values = data.draw(
        st.lists(
            st.one_of(
                st.floats(allow_nan=True, allow_infinity=True),
                st.floats(min_value=-5, max_value=120),
                st.sampled_from(_edge_values(cmap)),
            ),
            min_size=1,
            max_size=50,
        )
    )
    for dtype in (np.float64, np.float32):
        with np.errstate(over="ignore"):  # float64 -> float32 overflow to inf is fine here
            _check_consistent(cmap, np.array(values).astype(dtype))


@pytest.mark.parametrize("name", INTERVAL)
def test_palette_covers_every_output_colour(name: str) -> None:
    cmap = colormaps.get(name)
    rng = np.random.default_rng(1234)
    values = np.concatenate([rng.uniform(-10, 150, 100_000), _edge_values(cmap), [np.nan, -np.inf, np.inf]])
    _check_consistent(cmap, values)
    assert len(cmap.palette()) <= 256
    seen = {tuple(int(c) for c in row) for row in cmap.rgba(values)}
    assert seen <= set(cmap.palette())


def test_normalised_interval_map_palette_uses_value_range() -> None:
    cmap = Colormap("q", "Q", None, "interval", ((0.0, (1, 1, 1, 255)), (0.5, (2, 2, 2, 255))))
    values = np.array([-1.0, 0.0, 9.99, 10.0, 25.0])
    assert cmap.palette_index(values, (0, 20)).tolist() == [1, 2, 2, 3, 3]
    np.testing.assert_array_equal(
        np.array(cmap.palette(), dtype=np.uint8)[cmap.palette_index(values, (0, 20))], cmap.rgba(values, (0, 20))
    )
    with pytest.raises(ValueError):
        cmap.palette_index(values)


@pytest.mark.parametrize("name", INTERVAL)
def test_palette_png_round_trip(name: str) -> None:
    cmap = colormaps.get(name)
    values = np.linspace(-5, 110, 128 * 128).reshape(128, 128)
    values[0, :10] = np.nan
    image = Image.fromarray(cmap.palette_index(values))
    image.putpalette([c for color in cmap.palette() for c in color], rawmode="RGBA")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    decoded = Image.open(io.BytesIO(buffer.getvalue()))
    assert decoded.mode == "P"
    np.testing.assert_array_equal(np.asarray(decoded.convert("RGBA")), cmap.rgba(values))
