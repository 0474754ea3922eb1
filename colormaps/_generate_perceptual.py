"""Generate data/{viridis,magma,inferno,plasma,cividis}.json from rio-tiler's 256-entry tables.

This script was used to produce those committed files; it is not imported by
the package (rio-tiler is not needed at runtime to use these scales). Rerun
with `.venv/bin/python -m colormaps._generate_perceptual` from the repo root.

The scales are matplotlib's (viridis, magma, inferno, plasma by van der Walt,
Smith and Firing, CC0; cividis by Nuñez, Anderton and Renslow, CC0). They are
smooth, so 33 evenly spaced stops reproduce the 256-entry tables to within
3 levels per channel (6 for cividis, at a small kink in its blue channel near
the yellow end); the printout reports the exact error.
"""

import json
from pathlib import Path

import numpy as np
from rio_tiler.colormap import cmap


NAMES = {
    "viridis": "Viridis",
    "magma": "Magma",
    "inferno": "Inferno",
    "plasma": "Plasma",
    "cividis": "Cividis",
}
STOPS = 33
DATA_DIR = Path(__file__).parent / "data"


def table(name: str) -> np.ndarray:
    """The source lookup table as a (256, 4) float array."""
    entries = cmap.get(name)
    return np.array([entries[i] for i in range(256)], dtype=np.float64)


def definition(name: str, title: str) -> dict[str, object]:
    lut = table(name)
    # Stop positions are multiples of 1/32, exact in binary and short in JSON;
    # their colours are read off the table by linear interpolation because
    # these positions fall between its 256 entries.
    positions = np.linspace(0.0, 1.0, STOPS)
    colors = np.stack(
        [np.interp(positions * 255, np.arange(256), lut[:, k]) for k in range(4)], axis=-1
    )
    colors = np.rint(colors).astype(int)
    assert (colors[:, 3] == 255).all(), f"{name}: expected an opaque table"
    return {
        "name": name,
        "title": title,
        "units": None,
        "type": "continuous",
        "stops": [
            {"value": float(p), "color": "#{:02x}{:02x}{:02x}".format(*rgba[:3])}
            for p, rgba in zip(positions, colors)
        ],
    }


def max_error(name: str, data: dict[str, object]) -> int:
    """Largest channel difference between the stops' interpolation and the source table."""
    from .model import Colormap

    sampled = Colormap.from_dict(data).rgba(np.arange(256), value_range=(0, 255))
    return int(np.abs(sampled.astype(int) - table(name).astype(int)).max())


def dumps(data: dict[str, object]) -> str:
    """JSON with one stop per line, matching the hand-written data files."""
    head = {k: v for k, v in data.items() if k != "stops"}
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    stops = [f"    {json.dumps(stop)}" for stop in data["stops"]]  # type: ignore[union-attr]
    return "{\n" + "\n".join(lines) + '\n  "stops": [\n' + ",\n".join(stops) + "\n  ]\n}\n"


def main() -> None:
    for name, title in NAMES.items():
        data = definition(name, title)
        path = DATA_DIR / f"{name}.json"
        path.write_text(dumps(data), encoding="utf-8")
        print(f"{path}: {STOPS} stops, max channel error {max_error(name, data)}")


if __name__ == "__main__":
    main()
