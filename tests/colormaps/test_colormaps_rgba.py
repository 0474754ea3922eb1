import numpy as np
import pytest

import colormaps
from colormaps import Colormap

TRANSPARENT = (0, 0, 0, 0)

# The NWS 5-dBZ palette as tabulated in the project notes (colour scales section).
NWS_TABLE = [
    (5, (4, 233, 231)),
    (10, (1, 159, 244)),
    (15, (3, 0, 244)),
    (20, (2, 253, 2)),
    (25, (1, 197, 1)),
    (30, (0, 142, 0)),
    (35, (253, 248, 2)),
    (40, (229, 188, 0)),
    (45, (253, 149, 0)),
    (50, (253, 0, 0)),
    (55, (212, 0, 0)),
    (60, (188, 0, 0)),
    (65, (248, 0, 253)),
    (70, (152, 84, 198)),
    (75, (253, 253, 253)),
]


def rgba_of(cmap: Colormap, value: float, value_range: tuple[float, float] | None = None) -> tuple[int, ...]:
    return tuple(int(c) for c in cmap.rgba(np.array([value]), value_range)[0])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4.9, TRANSPARENT),
        (-30.0, TRANSPARENT),
        (-np.inf, TRANSPARENT),
        (5.0, (0x04, 0xE9, 0xE7, 255)),
        (9.999, (0x04, 0xE9, 0xE7, 255)),
        (10.0, (0x01, 0x9F, 0xF4, 255)),
        (52.0, (0xFD, 0x00, 0x00, 255)),
        (75.0, (0xFD, 0xFD, 0xFD, 255)),
        (80.0, (0xFD, 0xFD, 0xFD, 255)),
        (np.inf, (0xFD, 0xFD, 0xFD, 255)),
        (np.nan, TRANSPARENT),
    ],
)
def test_nws_reflectivity_values(value: float, expected: tuple[int, ...]) -> None:
    assert rgba_of(colormaps.get("nws-reflectivity"), value) == expected


@pytest.mark.parametrize(("dbz", "rgb"), NWS_TABLE)
def test_nws_reflectivity_matches_notes_table(dbz: float, rgb: tuple[int, int, int]) -> None:
    cmap = colormaps.get("nws-reflectivity")
    assert rgba_of(cmap, dbz) == (*rgb, 255)
    assert rgba_of(cmap, dbz + 4.99) == (*rgb, 255)


def test_reflectivity_smooth_shares_anchors_and_is_transparent_below_5() -> None:
    cmap = colormaps.get("reflectivity-smooth")
    assert not cmap.is_discrete
    for dbz, rgb in NWS_TABLE:
        assert rgba_of(cmap, dbz) == (*rgb, 255)
    assert rgba_of(cmap, 4.999) == TRANSPARENT
    assert rgba_of(cmap, 200.0) == (253, 253, 253, 255)  # clamps above
    # Between anchors the colour is blended, unlike the interval map.
    mid = rgba_of(cmap, 7.5)
    assert mid not in {(4, 233, 231, 255), (1, 159, 244, 255)}
    assert all(abs(m - (a + b) / 2) <= 0.5 for m, a, b in zip(mid, (4, 233, 231, 255), (1, 159, 244, 255)))


def test_output_shape_and_dtype() -> None:
    cmap = colormaps.get("nws-reflectivity")
    values = np.linspace(-10, 80, 6 * 7).reshape(6, 7)
    out = cmap.rgba(values)
    assert out.shape == (6, 7, 4) and out.dtype == np.uint8
    scalar = cmap.rgba(np.float64(52.0))
    assert scalar.shape == (4,) and tuple(scalar) == (253, 0, 0, 255)
    assert cmap.rgba(np.array([], dtype=np.float32)).shape == (0, 4)


def test_integer_inputs_and_large_lookup_tables() -> None:
    cmap = colormaps.get("temperature")
    codes = np.arange(65536, dtype=np.uint16)
    out = cmap.rgba(codes.astype(np.float64) / 100 - 50)  # e.g. centi-degrees with an offset
    assert out.shape == (65536, 4)
    assert (out[:, 3] == 255).all()
    nws = colormaps.get("nws-reflectivity")
    assert tuple(nws.rgba(np.array([52], dtype=np.int16))[0]) == (253, 0, 0, 255)


@pytest.mark.parametrize(
    ("name", "value"),
    [("precip-rate", 0.1), ("precip-rate", 0.25), ("wind-speed", 10.8), ("wind-speed", 1.6), ("wind-speed", 32.7)],
)
def test_float32_data_on_a_class_bound_gets_that_class(name: str, value: float) -> None:
    # float32(10.8) < 10.8, so comparing in float64 would drop a class.
    cmap = colormaps.get(name)
    expected = dict(cmap.stops)[value]
    assert tuple(cmap.rgba(np.array([value], dtype=np.float32))[0]) == expected
    assert tuple(cmap.rgba(np.array([value], dtype=np.float64))[0]) == expected


def test_float32_data_below_its_float64_bound_keeps_its_class() -> None:
    # float32(0.7) is 0.699999988 < 0.7: a float64 comparison would put a
    # stored 0.7 into the class below.
    assert float(np.float32(0.7)) < 0.7
    cmap = Colormap("t", "T", "mm/h", "interval", ((0.5, (1, 1, 1, 255)), (0.7, (2, 2, 2, 255))))
    assert tuple(cmap.rgba(np.array([0.7], dtype=np.float32))[0]) == (2, 2, 2, 255)
    assert cmap.palette_index(np.array([0.7], dtype=np.float32)).tolist() == [3]
    assert tuple(cmap.rgba(np.array([np.nextafter(0.7, 0)]))[0]) == (1, 1, 1, 255)


def test_continuous_linear_midpoint() -> None:
    cmap = Colormap("t", "T", "m/s", "continuous", ((0.0, (0, 0, 0, 0)), (10.0, (200, 100, 10, 250))))
    assert rgba_of(cmap, 5.0) == (100, 50, 5, 125)
    assert rgba_of(cmap, 2.5) == (50, 25, 2, 62)  # 2.5 and 62.5 round half to even
    assert rgba_of(cmap, 0.0) == (0, 0, 0, 0)
    assert rgba_of(cmap, 10.0) == (200, 100, 10, 250)
    assert rgba_of(cmap, -5.0) == (0, 0, 0, 0)  # clamps to the end colour
    assert rgba_of(cmap, 15.0) == (200, 100, 10, 250)


def test_continuous_interpolates_within_the_right_segment() -> None:
    cmap = colormaps.get("temperature")
    stops = dict(cmap.stops)
    a, b = np.array(stops[20.0], float), np.array(stops[30.0], float)
    assert np.abs(cmap.rgba(25.0).astype(float) - (a + b) / 2).max() <= 0.5
    assert np.abs(cmap.rgba(22.0).astype(float) - (0.8 * a + 0.2 * b)).max() <= 0.5


def test_continuous_below_and_above_override_clamping() -> None:
    cmap = Colormap(
        "t", "T", "m/s", "continuous",
        ((0.0, (0, 0, 0, 255)), (1.0, (255, 255, 255, 255))),
        below=(1, 2, 3, 4), above=(5, 6, 7, 8),
    )
    out = cmap.rgba(np.array([-0.1, 0.0, 1.0, 1.1, np.nan]))
    assert [tuple(int(c) for c in row) for row in out] == [
        (1, 2, 3, 4), (0, 0, 0, 255), (255, 255, 255, 255), (5, 6, 7, 8), TRANSPARENT,
    ]


def test_normalised_scale_requires_value_range() -> None:
    viridis = colormaps.get("viridis")
    assert viridis.normalized
    with pytest.raises(ValueError, match="value_range"):
        viridis.rgba(np.array([0.5]))


@pytest.mark.parametrize("bad", [(1.0, 1.0), (0.0, np.nan), (0.0, np.inf), (1.0,), (0, 1, 2), ("a", "b"), 5])
def test_bad_value_ranges_raise(bad: object) -> None:
    with pytest.raises(ValueError):
        colormaps.get("magma").rgba(np.array([0.5]), bad)  # type: ignore[arg-type]


def test_physical_scale_rejects_value_range() -> None:
    with pytest.raises(ValueError, match="fixed units"):
        colormaps.get("nws-reflectivity").rgba(np.array([30.0]), (0, 100))


def test_normalised_scale_is_stretched_over_value_range() -> None:
    viridis = colormaps.get("viridis")
    first, last = viridis.stops[0][1], viridis.stops[-1][1]
    mid = dict(viridis.stops)[0.5]
    out = viridis.rgba(np.array([250.0, 260.0, 270.0, 200.0, 300.0, np.nan]), value_range=(250, 270))
    rows = [tuple(int(c) for c in row) for row in out]
    assert rows == [first, mid, last, first, last, TRANSPARENT]
    # A reversed range flips the scale.
    assert rgba_of(viridis, 250.0, (270, 250)) == last


def test_rgba_is_consistent_with_stop_values() -> None:
    cmap = colormaps.get("plasma")
    positions = cmap.stop_values((-10, 30))
    assert positions[0] == -10 and positions[-1] == 30
    out = cmap.rgba(positions, (-10, 30))
    assert [tuple(int(c) for c in row) for row in out] == [color for _, color in cmap.stops]
