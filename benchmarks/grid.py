"""Per-request Web Mercator arithmetic: mercantile against morecantile's WebMercatorQuad, side by side.

tileserver/core/grid.py takes the grid's definition from morecantile and the
per-request functions (lon/lat to metres and back, tile bounds) from mercantile.
This prints what each costs per call, and checks they agree.

    .venv/bin/python benchmarks/grid.py
"""

from __future__ import annotations

import random
import timeit

import mercantile
import morecantile

TMS = morecantile.tms.get("WebMercatorQuad")
CALLS = 20_000


def main() -> None:
    rng = random.Random(0)
    points = [(rng.uniform(-180, 180), rng.uniform(-85, 85)) for _ in range(CALLS)]
    tiles = [(rng.randrange(2**z), rng.randrange(2**z), z) for z in (rng.randint(0, 14) for _ in range(CALLS))]
    metres = [mercantile.xy(*p) for p in points]
    cases = {
        "lon/lat to metres": (lambda: [mercantile.xy(*p) for p in points], lambda: [TMS.xy(*p) for p in points]),
        "metres to lon/lat": (lambda: [mercantile.lnglat(*m) for m in metres], lambda: [TMS.lnglat(*m) for m in metres]),
        "tile bounds (metres)": (lambda: [mercantile.xy_bounds(*t) for t in tiles],
                                 lambda: [TMS.xy_bounds(morecantile.Tile(*t)) for t in tiles]),
    }
    worst = 0.0
    for p, (a, b) in zip(points, zip([mercantile.xy(*p) for p in points], [TMS.xy(*p) for p in points])):
        worst = max(worst, abs(a[0] - b[0]), abs(a[1] - b[1]))
    print(f"{'call':<24} {'mercantile µs':>14} {'morecantile µs':>15} {'ratio':>7}")
    for name, (fast, slow) in cases.items():
        one = min(timeit.repeat(fast, number=1, repeat=3)) / CALLS * 1e6
        other = min(timeit.repeat(slow, number=1, repeat=3)) / CALLS * 1e6
        print(f"{name:<24} {one:>14.2f} {other:>15.2f} {other / one:>7.1f}")
    print(f"largest difference in lon/lat to metres over {CALLS} points: {worst:.2e} m")


if __name__ == "__main__":
    main()
