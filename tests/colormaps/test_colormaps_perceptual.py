import numpy as np
import pytest
from rio_tiler.colormap import cmap as rio_cmaps

import colormaps
from colormaps import _generate_perceptual as generator

PERCEPTUAL = ["viridis", "magma", "inferno", "plasma", "cividis"]


@pytest.mark.parametrize("name", PERCEPTUAL)
def test_perceptual_scale_shape(name: str) -> None:
    cmap = colormaps.get(name)
    assert cmap.normalized and cmap.type == "continuous" and cmap.units is None
    assert len(cmap.stops) == 33
    assert cmap.stops[0][0] == 0.0 and cmap.stops[-1][0] == 1.0


@pytest.mark.parametrize("name", PERCEPTUAL)
def test_perceptual_scale_matches_rio_tiler(name: str) -> None:
    table = np.array([rio_cmaps.get(name)[i] for i in range(256)], dtype=int)
    ours = colormaps.get(name).rgba(np.arange(256), value_range=(0, 255)).astype(int)
    assert np.abs(ours - table).max() <= 6
    assert np.abs(ours - table).mean() < 1.0


@pytest.mark.parametrize("name", PERCEPTUAL)
def test_committed_file_matches_generator(name: str) -> None:
    path = generator.DATA_DIR / f"{name}.json"
    expected = generator.dumps(generator.definition(name, generator.NAMES[name]))
    assert path.read_text(encoding="utf-8") == expected
