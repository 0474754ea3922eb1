"""Seamless views: one layer drawn from several, per pixel, in order of preference.

A blend layer (``blend = ["hrrr-temperature-2m", "gfs-temperature-2m"]`` in the
registry) has no frames of its own. At each valid time it stacks, from each
source layer, the frame of that layer's newest run valid then; a pixel takes
the first source in the stack that has data there. The sources share one
encoding (the registry checks it), so the stack is resolved on stored codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np

from tileserver.store import Catalog, Frame
from tileserver.core.timeutil import utcnow


@dataclass(frozen=True)
class Stack:
    """The frames drawn at one valid time, most preferred first."""

    time: datetime
    frames: tuple[Frame, ...]


def stacks(catalogs: Sequence[Catalog]) -> list[Stack]:
    """One stack per valid time any source has, in time order; ``catalogs`` in order of preference."""
    by_time: dict[datetime, list[Frame]] = {}
    for catalog in catalogs:
        for frame in catalog.visible_frames():  # the newest run of this source valid at that time
            by_time.setdefault(frame.time, []).append(frame)
    return [Stack(time, tuple(by_time[time])) for time in sorted(by_time)]


def resolve(found: Sequence[Stack], time: datetime | Literal["latest"], now: datetime | None = None) -> Stack | None:
    """The stack at ``time``; ``latest`` is the valid time closest to now, as for any forecast layer."""
    if not found:
        return None
    if time == "latest":
        now = now or utcnow()
        return min(found, key=lambda s: (abs(s.time - now), s.time))
    return next((stack for stack in found if stack.time == time), None)


def fill(codes: np.ndarray, nodata: int, more: np.ndarray) -> np.ndarray:
    """``codes`` with their no-data cells taken from ``more`` (a less preferred source)."""
    holes = codes == nodata
    if holes.any():
        codes = codes.copy()
        codes[holes] = more[holes]
    return codes
