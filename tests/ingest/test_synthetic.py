"""Tests of the synthetic weather fields (ingest.demo.synthetic)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from ingest.demo import synthetic
from ingest.demo.synthetic import NO_COVERAGE, NO_ECHO

T0 = datetime(2024, 5, 1, 18, 0, tzinfo=timezone.utc)
SMALL = (700, 1400)  # 0.05 deg over the MRMS domain


def frames(steps: int, shape=SMALL, seed: int = 0, step=timedelta(minutes=5)) -> list[tuple[datetime, np.ndarray]]:
    return list(synthetic.radar_sequence(T0, steps=steps, step=step, shape=shape, seed=seed))


@pytest.fixture(scope="module")
def full_frames() -> list[np.ndarray]:
    """Two full-resolution (3500 x 7000) frames, 1 h apart."""
    return [frame for _, frame in synthetic.radar_sequence(T0, steps=2, step=timedelta(hours=1))]


def test_times_shape_and_dtype() -> None:
    seq = frames(4, shape=(175, 350))
    assert [t for t, _ in seq] == [T0 + k * timedelta(minutes=5) for k in range(4)]
    for _, f in seq:
        assert f.shape == (175, 350)
        assert f.dtype == np.float32


def test_values_are_mrms_codes_or_half_dbz_echoes() -> None:
    for _, f in frames(3):
        echo = f[(f != NO_ECHO) & (f != NO_COVERAGE)]
        assert echo.size > 0
        assert echo.min() >= synthetic.ECHO_THRESHOLD_DBZ
        assert echo.max() <= synthetic.MAX_DBZ
        np.testing.assert_array_equal(echo * 2, np.round(echo * 2))  # 0.5 dBZ steps


def test_deterministic_and_seed_dependent() -> None:
    a = frames(2, shape=(350, 700), seed=3)
    b = frames(2, shape=(350, 700), seed=3)
    c = frames(2, shape=(350, 700), seed=4)
    for (_, x), (_, y) in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[1][1], c[1][1])


def test_frame_depends_only_on_seed_and_offset() -> None:
    short = frames(3, shape=(350, 700))
    long = frames(6, shape=(350, 700))
    for (ta, a), (tb, b) in zip(short, long):
        assert ta == tb
        np.testing.assert_array_equal(a, b)


def test_coverage_mask_marks_offshore_and_corners() -> None:
    cov = synthetic.radar_coverage(SMALL)
    assert cov.dtype == bool and not cov.flags.writeable
    lon, lat = synthetic.grid_centres(SMALL)

    def at(lo: float, la: float) -> bool:
        return bool(cov[np.abs(lat - la).argmin(), np.abs(lon - lo).argmin()])

    # corners and open ocean: no coverage
    for lo, la in [(-129.9, 54.9), (-60.1, 20.1), (-129.9, 20.1), (-60.1, 54.9), (-128.0, 30.0), (-65.0, 28.0)]:
        assert not at(lo, la), (lo, la)
    # interior of the CONUS: covered
    for lo, la in [(-98.0, 38.5), (-87.6, 41.9), (-104.9, 39.7), (-122.3, 47.6), (-80.2, 25.8)]:
        assert at(lo, la), (lo, la)
    for _, f in frames(1):
        np.testing.assert_array_equal(f == NO_COVERAGE, ~cov)


def test_full_frame_is_realistic(full_frames) -> None:
    # Speed is measured by hand, never asserted: these machines are shared.
    fr = full_frames
    for f in fr:
        assert f.shape == (3500, 7000)
        n = f.size
        no_cov = np.count_nonzero(f == NO_COVERAGE) / n
        no_echo = np.count_nonzero(f == NO_ECHO) / n
        echo = f[f >= synthetic.ECHO_THRESHOLD_DBZ]
        assert 0.2 < no_cov < 0.7
        assert no_echo > 0.3  # mostly empty sky
        assert 0.002 < echo.size / n < 0.1
        # stratiform rain shields dominate the echo area ...
        assert np.count_nonzero((echo >= 15) & (echo <= 35)) / echo.size > 0.3
        # ... with convective cores above 50 dBZ, topping out around 65
        assert np.count_nonzero(echo > 50) > 100
        assert 55.0 <= echo.max() <= synthetic.MAX_DBZ


def test_several_separate_storm_systems(full_frames) -> None:
    f = full_frames[0]
    # 1 (lat) x 2 (lon) degree boxes with a real echo (>= 20 dBZ) in them
    strong = f >= 20
    occupied = strong.reshape(35, 100, 35, 200).any(axis=(1, 3))
    # 8-15 systems of 100-400 km: spread over many 1 x 2 degree boxes, in several clumps
    assert occupied.sum() >= 10
    cols = np.flatnonzero(occupied.any(axis=0))
    assert cols.max() - cols.min() >= 10  # spread over more than 20 degrees of longitude


def _best_shift(a: np.ndarray, b: np.ndarray, max_shift: int) -> tuple[int, int]:
    """(drow, dcol) maximising the overlap of b with a shifted by it."""
    fa = np.fft.rfft2(a.astype(np.float64))
    fb = np.fft.rfft2(b.astype(np.float64))
    corr = np.fft.irfft2(np.conj(fa) * fb, s=a.shape)
    best, arg = -1.0, (0, 0)
    for dr in range(-max_shift, max_shift + 1):
        for dc in range(-max_shift, max_shift + 1):
            v = corr[dr % a.shape[0], dc % a.shape[1]]
            if v > best:
                best, arg = v, (dr, dc)
    return arg


def test_storms_move_east_northeast_at_synoptic_speed() -> None:
    # 0.05 deg grid, 30 minutes apart
    (_, a), (_, b) = frames(2, step=timedelta(minutes=30))
    dr, dc = _best_shift(a >= 20, b >= 20, max_shift=20)
    km_east = dc * 0.05 * 111.32 * np.cos(np.radians(38))
    km_north = -dr * 0.05 * 110.574
    speed = np.hypot(km_east, km_north) * 1000 / 1800
    assert km_east > 0, (dr, dc)
    assert km_north >= -10  # east to north-east
    assert 7 <= speed <= 30, speed


def test_storms_grow_and_decay() -> None:
    seq = frames(25)
    areas = np.array([np.count_nonzero(f >= 20) for _, f in seq])
    cores = np.array([np.count_nonzero(f >= 50) for _, f in seq])
    assert areas.min() > 0
    # the echo area and the convective cores change over the two hours
    assert areas.max() / areas.min() > 1.15
    assert cores.max() > cores.min()


def test_temperature_field_plausible() -> None:
    shape = (70, 140)
    t = synthetic.temperature_field(T0, shape)
    assert t.shape == shape and t.dtype == np.float32
    assert 245 < t.min() and t.max() < 320
    assert t[:10].mean() < t[-10:].mean() - 5  # cold north, warm south
    np.testing.assert_array_equal(t, synthetic.temperature_field(T0, shape))
    assert not np.array_equal(t, synthetic.temperature_field(T0, shape, seed=1))


def test_temperature_diurnal_cycle() -> None:
    lon = np.array([[-98.0]])
    lat = np.array([[38.0]])
    # 15 h local solar time at 98W is ~21:32 UTC; 03 h is ~09:32 UTC
    afternoon = synthetic.temperature_field(datetime(2024, 5, 1, 21, 32), lon=lon, lat=lat)
    night = synthetic.temperature_field(datetime(2024, 5, 1, 9, 32), lon=lon, lat=lat)
    assert afternoon[0, 0] - night[0, 0] > 6


def test_temperature_on_arbitrary_grid_matches_latlon_grid() -> None:
    shape = (35, 70)
    lon, lat = synthetic.grid_centres(shape)
    lon2, lat2 = np.meshgrid(lon, lat)
    a = synthetic.temperature_field(T0, shape)
    b = synthetic.temperature_field(T0, lon=lon2, lat=lat2)
    c = synthetic.temperature_field(T0, lon=lon2 + 360.0, lat=lat2)  # 0..360 longitudes
    np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_allclose(a, c, atol=1e-3)


def test_wind_components_plausible() -> None:
    shape = (70, 140)
    u, v = synthetic.wind_components(T0, shape)
    assert u.shape == v.shape == shape
    assert u.dtype == v.dtype == np.float32
    speed = np.hypot(u, v)
    assert speed.max() <= 25.0 + 1e-3
    assert speed.mean() > 2.0
    assert u.std() > 1.0 and v.std() > 1.0
    u2, v2 = synthetic.wind_components(T0 + timedelta(hours=6), shape)
    assert not np.allclose(u, u2)  # evolves with time
    u3, _ = synthetic.wind_components(T0, shape)
    np.testing.assert_array_equal(u, u3)


def test_lon_lat_arguments_validated() -> None:
    with pytest.raises(ValueError):
        synthetic.temperature_field(T0, lon=np.zeros((2, 2)))
    with pytest.raises(ValueError):
        synthetic.wind_components(T0, lon=np.zeros((2, 2)), lat=np.zeros((3, 2)))


def test_same_storms_at_any_resolution() -> None:
    # cell centres of the 0.1 deg grid coincide with every third centre of the 1/30 deg grid
    (_, coarse), = frames(1, shape=(350, 700))
    (_, fine), = frames(1, shape=(1050, 2100))
    sub = fine[1::3, 1::3]
    assert sub.shape == coarse.shape
    assert np.count_nonzero(coarse >= 20) > 100
    assert np.mean(np.abs(sub - coarse) <= 0.5) > 0.995


def test_coverage_switch_and_other_domains() -> None:
    (_, f), = synthetic.radar_sequence(T0, steps=1, shape=(350, 700), coverage=False)
    assert not np.any(f == NO_COVERAGE)
    assert np.count_nonzero(f >= 20) > 100
    # a European domain: out of reach of the US network, so fully covered; storms are placed inside it
    (_, eu), = synthetic.radar_sequence(T0, steps=1, shape=(200, 280), bounds=(2.0, 46.0, 16.0, 56.0))
    assert not np.any(eu == NO_COVERAGE)
    assert np.count_nonzero(eu >= 20) > 100
