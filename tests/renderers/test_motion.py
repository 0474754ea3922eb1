"""Motion estimation for the nowcast: known motions are recovered, the field is dense and safe."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi

from renderers.nowcast import motion
from renderers.nowcast.motion import METHODS, estimate_motion, get_method, to_brightness

ALL = ["dis", "farneback", "lucaskanade"]
SHAPE = (300, 300)
U, V = 3.0, -2.0  # columns (east), rows (south) per frame


def rain_canvas(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Smoothed noise thresholded like rain: dBZ with -inf = no echo, about half the area raining."""
    rng = np.random.default_rng(seed)

    def noise(sigma: float) -> np.ndarray:
        n = ndi.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
        return n / n.std()

    dbz = 12.0 + 12.0 * noise(10) + 6.0 * noise(3) + 2.0 * noise(1)
    dbz = np.round(np.minimum(dbz, 65.0) * 2) / 2
    return np.where(dbz >= 10.0, dbz, -np.inf).astype(np.float32)


def translated(n: int, u: int = 3, v: int = -2, shape: tuple[int, int] = SHAPE, seed: int = 0,
               echo_cols: int | None = None) -> list[np.ndarray]:
    """``n`` frames of a rain field moving by (u, v) whole pixels per frame (crops of a larger canvas).

    With ``echo_cols``, the rain area ends at that column of the first frame (and moves with the rain).
    """
    m = 40 + 3 * n
    canvas = rain_canvas((shape[0] + 2 * m, shape[1] + 2 * m), seed)
    if echo_cols is not None:
        canvas[:, m + echo_cols :] = -np.inf
    frames = []
    for t in range(n):
        r0, c0 = m - v * t, m - u * t  # frame_t(y, x) = base(y - v t, x - u t)
        frames.append(canvas[r0 : r0 + shape[0], c0 : c0 + shape[1]].copy())
    return frames


def rotated(n: int, omega: float, shape: tuple[int, int] = SHAPE, seed: int = 3) -> list[np.ndarray]:
    """Frames of a rain field turning by ``omega`` rad per frame about the centre (image axes, rows down)."""
    h, w = shape
    pad = 100
    base = rain_canvas((h + 2 * pad, w + 2 * pad), seed)
    base = np.where(np.isfinite(base), base, -30.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    frames = []
    for t in range(n):
        c, s = np.cos(omega * t), np.sin(omega * t)
        x0 = cx + c * (xx - cx) + s * (yy - cy)
        y0 = cy - s * (xx - cx) + c * (yy - cy)
        f = ndi.map_coordinates(base, [y0 + pad, x0 + pad], order=1).astype(np.float32)
        frames.append(np.where(f >= 10.0, f, -np.inf).astype(np.float32))
    return frames


def echo_region(frame: np.ndarray, margin: int = 10) -> np.ndarray:
    """Echo pixels of ``frame``, away from the grid edge."""
    m = np.isfinite(frame) & (frame >= 0)
    m[:margin] = m[-margin:] = False
    m[:, :margin] = m[:, -margin:] = False
    return m


def assert_motion(field: np.ndarray, region: np.ndarray, u: float, v: float, rel: float = 0.03) -> None:
    speed = np.hypot(u, v)
    fu, fv = field[0][region], field[1][region]
    assert abs(fu.mean() - u) <= rel * abs(u), (fu.mean(), u)
    assert abs(fv.mean() - v) <= rel * abs(v), (fv.mean(), v)
    err = np.hypot(fu - u, fv - v)
    assert np.percentile(err, 95) <= 0.1 * speed, np.percentile(err, 95)


def assert_contract(field: np.ndarray, shape: tuple[int, int]) -> None:
    assert isinstance(field, np.ndarray)
    assert field.dtype == np.float32
    assert field.shape == (2,) + tuple(shape)
    assert np.isfinite(field).all()


# --------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------


def test_registry_names_and_errors():
    for name in ALL:
        assert name in METHODS
        assert get_method(name) is METHODS[name]
        assert get_method(name.upper()) is METHODS[name]
    assert motion.DEFAULT_METHOD in METHODS
    with pytest.raises(ValueError) as err:
        get_method("no-such-method")
    for name in ALL:
        assert name in str(err.value)


def test_bad_inputs_are_refused():
    frames = translated(2)
    with pytest.raises(ValueError):
        estimate_motion(frames[:1])
    with pytest.raises(ValueError):
        estimate_motion(frames[0])  # one 2-D array is not a sequence of frames
    with pytest.raises(ValueError):
        estimate_motion([frames[0], frames[1][:-1]])
    with pytest.raises(ValueError):
        estimate_motion(frames, method="dis", preset="slowest")


def test_brightness_scaling():
    dbz = np.array([np.nan, -np.inf, -20.0, 0.0, 30.0, 60.0, 75.0], dtype=np.float32)
    b = to_brightness(dbz)
    assert b.dtype == np.uint8
    assert b.tolist()[:4] == [0, 0, 0, 0]
    assert abs(int(b[4]) - 128) <= 1
    assert b[5] == 255 and b[6] == 255


def test_inputs_are_not_modified_and_other_dtypes_work():
    frames = translated(2)
    before = [f.copy() for f in frames]
    field = estimate_motion([f.astype(np.float64) for f in frames])
    assert_contract(field, SHAPE)
    estimate_motion(frames)
    for a, b in zip(frames, before):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# Known motions
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("n", [2, 3])
def test_uniform_translation_is_recovered(method, n):
    frames = translated(n)
    field = get_method(method)(frames)
    assert_contract(field, SHAPE)
    assert_motion(field, echo_region(frames[-1]), U, V)


def test_default_method_recovers_translation():
    frames = translated(3)
    assert_motion(estimate_motion(frames), echo_region(frames[-1]), U, V)


@pytest.mark.parametrize("method", ALL)
def test_reduced_grid_path_scales_the_vectors(method):
    # a grid longer than max_size is reduced 3x before the flow, and the vectors are scaled back
    frames = translated(3, u=6, v=-3)
    field = get_method(method)(frames, max_size=100)
    assert_contract(field, SHAPE)
    assert_motion(field, echo_region(frames[-1], 20), 6.0, -3.0, rel=0.05)


@pytest.mark.parametrize("method", ALL)
def test_small_cells_keep_neighbouring_motions_apart(method):
    # two rain bands side by side moving in opposite directions, as along a squall
    # line: with cells a fraction of the band's width, each band keeps its own motion
    north = translated(3, u=3, v=0, seed=1)
    south = translated(3, u=-2, v=1, seed=2)
    frames = [np.concatenate([n[:150], s[150:]]) for n, s in zip(north, south)]
    field = get_method(method)(frames, cell=4)
    assert_contract(field, SHAPE)
    for rows, (u, v) in ((slice(20, 120), (3.0, 0.0)), (slice(180, 280), (-2.0, 1.0))):
        band = np.zeros(SHAPE, dtype=bool)
        band[rows, 20:-20] = True
        band &= np.isfinite(frames[-1])
        assert np.median(field[0][band]) == pytest.approx(u, abs=0.3)
        assert np.median(field[1][band]) == pytest.approx(v, abs=0.3)


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("omega", [0.02, -0.02])
def test_rotation_has_the_right_curl(method, omega):
    frames = rotated(3, omega)
    field = get_method(method)(frames)
    assert_contract(field, SHAPE)
    # curl dv/dx - du/dy = 2 omega for solid-body rotation (image axes)
    dv_dx = np.gradient(field[1], axis=1)
    du_dy = np.gradient(field[0], axis=0)
    inner = np.zeros(SHAPE, dtype=bool)
    inner[60:-60, 60:-60] = True
    curl = float(np.mean((dv_dx - du_dy)[inner]))
    assert np.sign(curl) == np.sign(omega)
    assert 0.6 * abs(2 * omega) < abs(curl) < 1.4 * abs(2 * omega), curl
    # and the vectors themselves: v = omega (x - cx) at the centre row
    h, w = SHAPE
    row = field[1][h // 2, 40:-40]
    expected = omega * (np.arange(40, w - 40) - (w - 1) / 2)
    assert np.corrcoef(row, expected)[0, 1] > 0.9


# --------------------------------------------------------------------------
# Dense field, no echo, no coverage
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ALL)
def test_field_is_dense_and_relaxes_to_the_echo_motion_away_from_echoes(method):
    frames = translated(3, echo_cols=130)  # echoes only in the western half
    field = get_method(method)(frames)
    assert_contract(field, SHAPE)
    east = field[:, :, 220:]  # far from any echo
    assert np.allclose(east[0], U, atol=0.3) and np.allclose(east[1], V, atol=0.3)
    # smooth: no jumps between neighbouring pixels
    assert np.abs(np.diff(field, axis=2)).max() < 0.2
    assert np.abs(np.diff(field, axis=1)).max() < 0.2


@pytest.mark.parametrize("method", ALL)
def test_no_echo_gives_zero_motion(method):
    h, w = SHAPE
    frames = [np.full(SHAPE, -np.inf, np.float32) for _ in range(3)]
    frames[1][:50] = np.nan  # no coverage is not echo either
    frames[2][:, :10] = -20.0  # below 0 dBZ: no echo
    field = get_method(method)(frames)
    assert_contract(field, (h, w))
    assert not field.any()
    all_nan = [np.full(SHAPE, np.nan, np.float32)] * 2
    assert not get_method(method)(all_nan).any()


@pytest.mark.parametrize("method", ALL)
def test_no_coverage_does_not_make_motion_of_a_still_scene(method):
    still = rain_canvas(SHAPE, seed=5)
    frames = [still.copy() for _ in range(3)]
    for i, f in enumerate(frames):
        f[100:180, 120:200] = np.nan  # a hole in coverage ...
        f[:, : 20 + 5 * i] = np.nan  # ... and an edge of coverage that changes between frames
    field = get_method(method)(frames)
    assert_contract(field, SHAPE)
    assert np.abs(field).max() < 0.1


@pytest.mark.parametrize("method", ALL)
def test_echoes_moving_under_a_coverage_gap_keep_their_motion(method):
    frames = translated(3)
    for f in frames:
        f[110:190, 110:190] = np.nan  # static no-coverage block inside the rain
    field = get_method(method)(frames)
    assert_contract(field, SHAPE)
    near = np.zeros(SHAPE, dtype=bool)
    near[90:210, 90:210] = True
    near[110:190, 110:190] = False
    region = near & np.isfinite(frames[-1])
    assert_motion(field, region, U, V, rel=0.05)
    # inside the gap the field is interpolated from around it
    assert_motion(field, ~near & (np.abs(np.mgrid[0:300, 0:300] - 150).max(axis=0) < 40), U, V, rel=0.05)


# --------------------------------------------------------------------------
# Flow in horizontal strips (bounded buffers on continental grids)
# --------------------------------------------------------------------------


DENSE = ["dis", "farneback"]


@pytest.mark.parametrize("rows, strip_rows, margin", [(1152, 384, 64), (700, 384, 64), (601, 100, 30), (300, 64, 32)])
def test_strips_tile_the_rows_and_are_computed_alike(rows, strip_rows, margin):
    bands = motion.strips(rows, strip_rows, margin)
    assert len(bands) > 1
    kept = np.concatenate([np.arange(rows)[keep] for keep, _ in bands])
    np.testing.assert_array_equal(kept, np.arange(rows))  # every row once, in order
    for keep, run in bands:
        assert run.stop - run.start == strip_rows + 2 * margin  # one height: one pyramid depth
        assert 0 <= run.start <= keep.start and keep.stop <= run.stop <= rows
        assert keep.start - run.start >= margin or run.start == 0
        assert run.stop - keep.stop >= margin or run.stop == rows


def test_one_strip_when_the_grid_is_not_taller_than_a_strip():
    assert motion.strips(512, 384, 64) == [(slice(0, 512), slice(0, 512))]
    assert motion.strips(300, None, 64) == [(slice(0, 300), slice(0, 300))]


def seams(rows: int, strip_rows: int, margin: int, within: int) -> np.ndarray:
    """Rows within ``within`` of a seam between kept bands."""
    near = np.zeros(rows, dtype=bool)
    for keep, _ in motion.strips(rows, strip_rows, margin)[1:]:
        near[max(0, keep.start - within) : keep.start + within] = True
    return near


@pytest.mark.parametrize("method", DENSE)
def test_uniform_translation_is_recovered_across_strip_seams(method):
    shape = (600, 300)
    frames = translated(3, shape=shape, seed=4)
    field = get_method(method)(frames, strip_rows=100, strip_margin=32)
    assert_contract(field, shape)
    region = echo_region(frames[-1])
    assert_motion(field, region, U, V)
    at_seams = region & seams(shape[0], 100, 32, 8)[:, None]
    assert at_seams.sum() > 2000
    assert_motion(field, at_seams, U, V)


@pytest.mark.parametrize("method", DENSE)
def test_rotation_is_recovered_across_strip_seams_as_on_the_whole_grid(method):
    frames = rotated(3, 0.02)
    whole = get_method(method)(frames)
    field = get_method(method)(frames, strip_rows=64, strip_margin=32)
    assert_contract(field, SHAPE)
    inner = np.zeros(SHAPE, dtype=bool)
    inner[60:-60, 60:-60] = True
    dv_dx = np.gradient(field[1], axis=1)
    du_dy = np.gradient(field[0], axis=0)
    curl = float(np.mean((dv_dx - du_dy)[inner]))
    assert 0.6 * 0.04 < curl < 1.4 * 0.04, curl
    # at the seams as elsewhere the stitched field is the whole grid's, to about 1 % of
    # the local speed (solid-body rotation: 0.02 px per px from the centre, up to 2.5 px
    # here); strips computed without a margin miss by twice that (DIS) or more
    h, w = SHAPE
    yy, xx = np.mgrid[0:h, 0:w]
    speed = 0.02 * np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
    at_seams = inner & seams(h, 64, 32, 8)[:, None]
    err = np.hypot(*(field - whole))
    assert np.median(err[at_seams] / speed[at_seams].clip(0.5)) < 0.02
    assert np.percentile(err[inner], 95) < 0.06
