"""The Colormap value type: maps data values (dBZ, mm/h, ...) to RGBA, as arrays."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .colors import RGBA, TRANSPARENT, check_rgba
from .definition import TYPES, ColormapType, Fields, dump_definition, parse_definition
from .errors import ColormapDefinitionError
from .legend import render_legend

ValueRange = tuple[float, float]

# Palette PNGs hold at most 256 entries; index 0 (no data) and the below class use two.
MAX_INTERVAL_STOPS = 254


@dataclass(frozen=True)
class Colormap:
    """A named colour scale.

    Interval maps: stops are class lower bounds; a value takes the colour of
    the last stop <= value, values under the first stop take `below`
    (transparent unless set). Continuous maps: linear RGBA interpolation
    between stops, clamped to the end colours unless `below`/`above` is set.
    Maps with units None are normalised: stop values lie in 0..1 and callers
    pass the data range to stretch them over.

    Frozen and hashable so renderers can key lookup-table caches on it.
    """

    name: str
    title: str
    units: str | None
    type: ColormapType
    stops: tuple[tuple[float, RGBA], ...]
    below: RGBA | None = None
    above: RGBA | None = None

    def __post_init__(self) -> None:
        # Checked here rather than only in the JSON parser so that maps built in
        # code (tests, user-defined maps) obey the same invariants.
        if self.type not in TYPES:
            raise ColormapDefinitionError(f"{self.name}: type must be one of {TYPES}, got {self.type!r}")
        stops = tuple((float(value), check_rgba(color)) for value, color in self.stops)
        below = None if self.below is None else check_rgba(self.below)
        above = None if self.above is None else check_rgba(self.above)
        values = [value for value, _ in stops]

        minimum = 1 if self.type == "interval" else 2
        if len(stops) < minimum:
            raise ColormapDefinitionError(f"{self.name}: {self.type} maps need at least {minimum} stop(s)")
        if not all(math.isfinite(v) for v in values):
            raise ColormapDefinitionError(f"{self.name}: stop values must be finite")
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ColormapDefinitionError(f"{self.name}: stop values must be strictly increasing")
        if self.units is None and not (0.0 <= values[0] and values[-1] <= 1.0):
            raise ColormapDefinitionError(f"{self.name}: normalised maps need stop values in 0..1")
        if self.type == "interval":
            if len(stops) > MAX_INTERVAL_STOPS:
                raise ColormapDefinitionError(
                    f"{self.name}: at most {MAX_INTERVAL_STOPS} interval stops fit a palette"
                )
            # The last interval class is already open-ended, so an "above"
            # colour would need a value where the last class stops: that is
            # simply one more stop.
            if above is not None:
                raise ColormapDefinitionError(
                    f"{self.name}: interval maps take no 'above' colour; add a final stop instead"
                )
            # Resolve the documented default so to_json() and palette() state it explicitly.
            if below is None:
                below = TRANSPARENT

        object.__setattr__(self, "stops", stops)
        object.__setattr__(self, "below", below)
        object.__setattr__(self, "above", above)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Colormap":
        """Build from a definition dict (a data file's content or to_json() output)."""
        return cls(**parse_definition(data))

    @property
    def normalized(self) -> bool:
        """True for perceptual scales without units, whose stops are 0..1 positions."""
        return self.units is None

    @property
    def is_discrete(self) -> bool:
        """True for interval maps, which have a finite colour set and can render as palette PNGs."""
        return self.type == "interval"

    def stop_values(self, value_range: Sequence[float] | None = None) -> np.ndarray:
        """Stop positions in data units (stretched over value_range for normalised maps)."""
        values = np.array([value for value, _ in self.stops], dtype=np.float64)
        span = self._range(value_range)
        if span is None:
            return values
        lo, hi = span
        return lo + values * (hi - lo)

    def rgba(self, values: np.ndarray, value_range: Sequence[float] | None = None) -> np.ndarray:
        """Colour `values`; returns uint8 of shape values.shape + (4,), NaN -> (0, 0, 0, 0)."""
        x, xp = self._positions(values, value_range)
        if self.is_discrete:
            out = np.take(self._class_colors(), np.searchsorted(xp, x, side="right"), axis=0)
        else:
            out = self._interpolate(x, xp)
        out[np.isnan(x)] = TRANSPARENT
        return out

    def palette(self) -> list[RGBA]:
        """Palette for paletted PNGs: [no data, below, stop 1, ..., stop n]."""
        self._require_discrete("palette")
        assert self.below is not None  # resolved in __post_init__ for interval maps
        return [TRANSPARENT, self.below, *(color for _, color in self.stops)]

    def palette_index(self, values: np.ndarray, value_range: Sequence[float] | None = None) -> np.ndarray:
        """Index into palette() for each value, so that palette()[i] == rgba(value); NaN -> 0."""
        self._require_discrete("palette_index")
        x, xp = self._positions(values, value_range)
        index = np.searchsorted(xp, x, side="right") + 1
        return np.where(np.isnan(x), 0, index).astype(np.uint8)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready description served by GET /api/colormaps/{name}."""
        return dump_definition(self._fields())

    def legend_png(
        self, width: int = 300, height: int = 50, value_range: Sequence[float] | None = None
    ) -> bytes:
        """A horizontal colour bar with tick labels and units, as PNG bytes.

        Normalised maps without value_range are labelled with their 0..1 positions.
        """
        return render_legend(self, width, height, value_range)

    def _fields(self) -> Fields:
        return Fields(
            name=self.name,
            title=self.title,
            units=self.units,
            type=self.type,
            stops=self.stops,
            below=self.below,
            above=self.above,
        )

    def _require_discrete(self, what: str) -> None:
        if not self.is_discrete:
            raise ValueError(f"{what} needs an interval colormap; {self.name!r} is {self.type}")

    def _range(self, value_range: Sequence[float] | None) -> ValueRange | None:
        """The validated value range for normalised maps; None for physical ones."""
        if not self.normalized:
            # Physical scales have fixed meaning (40 dBZ is always orange);
            # silently ignoring a range would hide a caller's mistake.
            if value_range is not None:
                raise ValueError(
                    f"colormap {self.name!r} has fixed units ({self.units}); value_range does not apply"
                )
            return None
        if value_range is None:
            raise ValueError(
                f"colormap {self.name!r} is normalised; pass value_range=(min, max) in data units"
            )
        try:
            lo, hi = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise ValueError(f"value_range must be two numbers, got {value_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
            raise ValueError(f"value_range must be two different finite numbers, got {value_range!r}")
        return (lo, hi)

    def _positions(
        self, values: np.ndarray, value_range: Sequence[float] | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Values and stop positions in one comparable space and dtype."""
        values = np.asarray(values)
        stops = [value for value, _ in self.stops]
        span = self._range(value_range)
        if span is not None:
            lo, hi = span
            return (values.astype(np.float64) - lo) / (hi - lo), np.array(stops, dtype=np.float64)
        # Compare in the data's own float precision: float32(0.7) < 0.7 in
        # float64, so a stored 0.7 mm/h would otherwise drop a class.
        dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else np.dtype(np.float64)
        return values.astype(dtype, copy=False), np.array(stops, dtype=dtype)

    def _class_colors(self) -> np.ndarray:
        assert self.below is not None
        return np.array([self.below, *(color for _, color in self.stops)], dtype=np.uint8)

    def _interpolate(self, x: np.ndarray, xp: np.ndarray) -> np.ndarray:
        colors = np.array([color for _, color in self.stops], dtype=np.float64)
        nan = np.isnan(x)
        finite_x = np.where(nan, xp[0], x)  # np.interp would propagate NaN into the uint8 cast
        channels = [np.interp(finite_x, xp, colors[:, k]) for k in range(4)]
        out = np.rint(np.stack(channels, axis=-1)).astype(np.uint8)
        if self.below is not None:
            out[x < xp[0]] = self.below
        if self.above is not None:
            out[x > xp[-1]] = self.above
        return out
