"""The registry of shipped colormaps: one JSON definition per file in data/, loaded lazily once."""

import functools
import json
from importlib.resources import files

from .errors import ColormapDefinitionError, UnknownColormapError
from .model import Colormap


def get(name: str) -> Colormap:
    """The colormap registered as `name`; raises UnknownColormapError."""
    registry = _load_all()
    try:
        return registry[name]
    except (KeyError, TypeError):  # TypeError: unhashable names from sloppy callers
        raise UnknownColormapError(name, registry) from None


def names() -> list[str]:
    """Names of all registered colormaps, sorted."""
    return sorted(_load_all())


@functools.cache
def _load_all() -> dict[str, Colormap]:
    # Everything is parsed on first use so a broken data file fails loudly
    # at once instead of when some rarely used layer is first requested.
    registry: dict[str, Colormap] = {}
    for resource in sorted(files(__package__).joinpath("data").iterdir(), key=lambda r: r.name):
        if not resource.name.endswith(".json"):
            continue
        stem = resource.name.removesuffix(".json")
        try:
            definition = json.loads(resource.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ColormapDefinitionError(f"{resource.name}: invalid JSON: {exc}") from exc
        cmap = Colormap.from_dict(definition)
        # The file name is what people grep for; it must match the API name.
        if cmap.name != stem:
            raise ColormapDefinitionError(f"{resource.name}: defines name {cmap.name!r}, expected {stem!r}")
        registry[cmap.name] = cmap
    return registry
