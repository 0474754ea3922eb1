import io

import numpy as np
import pytest
from PIL import Image

import colormaps
from colormaps import Colormap
from colormaps.legend import CHECKER_DARK
from colormaps.ticks import display_units, format_value, nice_ticks


def decode(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def colours(image: Image.Image) -> set[tuple[int, ...]]:
    return {tuple(p) for p in np.asarray(image.convert("RGBA")).reshape(-1, 4)}


@pytest.mark.parametrize("name", colormaps.names())
@pytest.mark.parametrize("size", [(300, 50), (120, 24), (800, 120)])
def test_legend_decodes_at_requested_size(name: str, size: tuple[int, int]) -> None:
    cmap = colormaps.get(name)
    image = decode(cmap.legend_png(*size, value_range=(0, 40) if cmap.normalized else None))
    assert image.size == size
    assert len(colours(image)) > 5


def test_default_size() -> None:
    assert decode(colormaps.get("temperature").legend_png()).size == (300, 50)


@pytest.mark.parametrize("name", ["nws-reflectivity", "precip-rate", "wind-speed"])
def test_interval_legend_shows_every_class_colour(name: str) -> None:
    cmap = colormaps.get(name)
    seen = colours(decode(cmap.legend_png(600, 60)))
    for _, colour in cmap.stops:
        assert colour in seen, colour


def test_continuous_legend_shows_end_colours() -> None:
    cmap = colormaps.get("temperature")
    seen = colours(decode(cmap.legend_png(400, 50)))
    assert cmap.stops[0][1] in seen and cmap.stops[-1][1] in seen


def test_legend_has_text() -> None:
    # Labels and units are drawn in dark ink below/beside the bar.
    image = np.asarray(decode(colormaps.get("nws-reflectivity").legend_png(300, 50)).convert("RGB")).astype(int)
    lower = image[40:, :, :]
    assert (lower.sum(axis=-1) < 200).sum() > 20
    right = image[:, 270:, :]
    assert (right.sum(axis=-1) < 200).sum() > 10  # the "dBZ" label


def test_transparent_class_is_visible() -> None:
    cmap = Colormap(
        "t", "T", "mm", "interval",
        ((0.0, (0, 0, 0, 0)), (1.0, (255, 0, 0, 255)), (2.0, (0, 0, 255, 255))),
        below=(0, 255, 0, 255),
    )
    image = decode(cmap.legend_png(300, 50))
    seen = colours(image)
    assert CHECKER_DARK in seen
    assert {(0, 255, 0, 255), (255, 0, 0, 255), (0, 0, 255, 255)} <= seen


def test_normalised_legend_labels_follow_value_range() -> None:
    viridis = colormaps.get("viridis")
    assert viridis.legend_png(300, 50, (0, 1)) == viridis.legend_png(300, 50)
    assert viridis.legend_png(300, 50, (-20, 80)) != viridis.legend_png(300, 50)


def test_physical_legend_rejects_value_range() -> None:
    with pytest.raises(ValueError):
        colormaps.get("temperature").legend_png(value_range=(0, 10))


@pytest.mark.parametrize(
    ("width", "height"),
    [(0, 50), (-1, 50), (2001, 50), (300, 0), (300, 501), (300.0, 50), ("300", 50), (300, None)],
)
def test_bad_legend_sizes_raise(width: object, height: object) -> None:
    with pytest.raises(ValueError):
        colormaps.get("nws-reflectivity").legend_png(width, height)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [(1, 1), (2000, 500), (2000, 1), (1, 500), (7, 7), (40, 10)])
def test_extreme_sizes_render(size: tuple[int, int]) -> None:
    for name in ("nws-reflectivity", "temperature", "viridis"):
        assert decode(colormaps.get(name).legend_png(*size)).size == size


def test_nice_ticks() -> None:
    assert nice_ticks(-40, 45) == [-40, -20, 0, 20, 40]
    assert nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1]
    assert nice_ticks(0, 40) == [0, 10, 20, 30, 40]
    assert nice_ticks(10, 0) == nice_ticks(0, 10)
    assert nice_ticks(3, 3) == [3]
    ticks = nice_ticks(0.1, 0.7)
    assert all(0.1 <= t <= 0.7 for t in ticks) and 3 <= len(ticks) <= 7


def test_format_value_and_units() -> None:
    assert [format_value(v) for v in (5.0, -0.0, 0.25, 10.8, 100.0, 0.03125, 1234.5678)] == [
        "5", "0", "0.25", "10.8", "100", "0.03125", "1235",
    ]
    assert display_units("degC") == "°C"
    assert display_units("mm/h") == "mm/h"
