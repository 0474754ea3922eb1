"""Colour scales for wxtiles layers (reflectivity, rain rate, temperature, wind, perceptual).

Each colormap is a JSON definition in colormaps/data/; see model.Colormap for
the semantics and registry for lookup.
"""

from .colors import RGBA
from .errors import ColormapDefinitionError, UnknownColormapError
from .model import Colormap
from .registry import get, names

__all__ = ["RGBA", "Colormap", "ColormapDefinitionError", "UnknownColormapError", "get", "names"]
