"""Validate request parameters into typed values; every failure is a :class:`BadRequest`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import mercantile

from tileserver.core import grid
from tileserver.service.errors import BadRequest, NotFound
from tileserver.core.layers import LAYERS, Layer
from tileserver.core.timeutil import TimeFormatError, parse_utc

MAX_ZOOM = 22
TileFormat = Literal["png", "npy"]
FrameTime = datetime | Literal["latest"]
# ?hours= beyond ten years is no "recent frames" (and would overflow date arithmetic).
MAX_HOURS = 87600

# ASCII digits only: str.isdigit() accepts "³", which int() refuses.
_DIGITS = re.compile(r"^[0-9]{1,8}$")
_TILE_NAME = re.compile(r"^(?P<y>[0-9]{1,8})(?:@(?P<scale>[12])x)?\.(?P<fmt>png|npy)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


@dataclass(frozen=True)
class TileRequest:
    layer: Layer
    time: FrameTime
    run: datetime | None
    tile: mercantile.Tile
    size: int
    format: TileFormat
    colormap: str


def layer_param(layer_id: str) -> Layer:
    layer = LAYERS.get(layer_id)
    if layer is None:
        shown = layer_id if _NAME.fullmatch(layer_id) else "(invalid name)"
        raise NotFound(f"unknown layer {shown!r}; known layers: {', '.join(LAYERS)}")
    return layer


def time_param(text: str | None, name: str = "time") -> FrameTime:
    if text is None or text == "latest":
        return "latest"
    try:
        return parse_utc(text)
    except TimeFormatError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def run_param(text: str | None) -> datetime | None:
    if text is None:
        return None
    value = time_param(text, "run")
    if value == "latest":
        raise BadRequest("run: give the model run time, such as 2026-11-27T18:00:00Z")
    return value


def colormap_name_param(text: str | None, layer: Layer) -> str:
    if text is None:
        return layer.colormap
    if not _NAME.fullmatch(text):
        raise BadRequest("colormap: not a colormap name")
    return text


def tile_params(layer_id: str, time: str, z: str, x: str, y_name: str, query: dict[str, str]) -> TileRequest:
    layer = layer_param(layer_id)
    match = _TILE_NAME.fullmatch(y_name)
    if not match or not _DIGITS.fullmatch(z) or not _DIGITS.fullmatch(x):
        raise BadRequest("tile address must be /{z}/{x}/{y}.png, {y}@2x.png or {y}.npy with whole numbers")
    zoom, col, row = int(z), int(x), int(match["y"])
    if zoom > MAX_ZOOM:
        raise BadRequest(f"zoom {zoom} is out of range 0..{MAX_ZOOM}")
    if col >= 2**zoom or row >= 2**zoom:
        raise BadRequest(f"tile {zoom}/{col}/{row} does not exist: x and y must be below {2**zoom} at zoom {zoom}")
    fmt: TileFormat = match["fmt"]  # type: ignore[assignment]
    return TileRequest(
        layer=layer,
        time=time_param(time),
        run=run_param(query.get("run")),
        tile=mercantile.Tile(col, row, zoom),
        size=256 * int(match["scale"] or 1),
        format=fmt,
        # Raw values have no colours: one cache entry and ETag whatever ?colormap says.
        colormap=colormap_name_param(query.get("colormap"), layer) if fmt == "png" else "",
    )


def lonlat_params(query: dict[str, str]) -> tuple[float, float]:
    values = []
    for name, limit in (("lon", 180.0), ("lat", grid.MAX_LAT)):
        text = query.get(name)
        if text is None:
            raise BadRequest(f"{name} is required")
        try:
            value = float(text)
        except ValueError:
            raise BadRequest(f"{name}={text!r} is not a number") from None
        if not math.isfinite(value) or abs(value) > limit:
            raise BadRequest(f"{name}={text} is out of range -{limit:g}..{limit:g}")
        values.append(value)
    return values[0], values[1]


def hours_param(query: dict[str, str]) -> float | None:
    """``?hours=``: only the frames of the last hours (None: all of them)."""
    text = query.get("hours")
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"hours={text!r} is not a number; give hours greater than 0, such as 2") from None
    if not 0 < value <= MAX_HOURS:  # NaN fails too
        raise BadRequest(f"hours={text} is out of range: give more than 0 and at most {MAX_HOURS}, such as 2")
    return value


def size_param(query: dict[str, str], name: str, default: int, limit: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= limit:
        raise BadRequest(f"{name} must be a whole number from 1 to {limit}")
    return int(text)
