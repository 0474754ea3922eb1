"""What a URL's time names: a stored frame, a blend's stack of frames, or a nowcast step.

Plain functions over catalogs: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tileserver.core.layers import Layer
from tileserver.core.timeutil import format_utc
from tileserver.service import blend
from tileserver.service.errors import BadRequest, NotFound
from tileserver.service.params import FrameTime
from tileserver.store import Catalog, Frame


@dataclass(frozen=True)
class Target:
    """The frame a URL names: stored, or a nowcast ``lead_s`` past ``frame`` along ``motion``."""

    frame: Frame
    time: datetime
    lead_s: float = 0.0
    motion: str | None = None
    # A blend's less preferred frames at this time: they fill ``frame``'s no-data cells.
    under: tuple[Frame, ...] = ()

    @property
    def is_nowcast(self) -> bool:
        return self.lead_s > 0

    @property
    def identity(self) -> str:
        """Everything the rendered bytes depend on, for cache keys and ETags."""
        base = "|".join(f"{frame.layer}|{frame.digest}" for frame in (self.frame, *self.under))
        return f"{base}|nowcast|{self.motion}|{self.lead_s:g}" if self.is_nowcast else base


def resolve(layer: Layer, catalog: Catalog, time: FrameTime, run: Any, horizon_min: int) -> Target:
    """A stored frame of ``catalog``, or a nowcast from its latest one; NotFound otherwise."""
    frame = catalog.resolve(time, run)
    if frame is not None:
        return Target(frame, frame.time)
    if time != "latest" and run is None:
        nowcast = nowcast_at(layer, catalog, time, horizon_min)
        if nowcast is not None:
            return nowcast
    what = "no frames yet" if time == "latest" else f"no frame at {format_utc(time)}"
    if run is not None:
        what += f" in run {format_utc(run)}"
    elif layer.nowcast and catalog.frames and time != "latest" and time > catalog.frames[-1].time:
        what += f" (nowcasts are every {layer.cadence_minutes} min up to {horizon_min} min after the latest frame)"
    raise NotFound(f"layer {layer.id!r} has {what}")


def refuse_run(layer: Layer, run: Any) -> None:
    """A blend shows each source's newest run: a run belongs to one of its sources."""
    if run is not None:
        raise BadRequest(f"layer {layer.id!r} blends the newest runs of {' and '.join(layer.blend)}; ask one of those for a given run")


def resolve_blend(layer: Layer, stacks: list[blend.Stack], time: FrameTime, run: Any) -> Target:
    refuse_run(layer, run)
    stack = blend.resolve(stacks, time)
    if stack is None:
        what = "no frames yet" if time == "latest" else f"no frame at {format_utc(time)}"
        raise NotFound(f"layer {layer.id!r} has {what} (in {' or '.join(layer.blend)})")
    return Target(stack.frames[0], stack.time, under=stack.frames[1:])


def nowcasts(layer: Layer, catalog: Catalog, horizon_min: int) -> list[Target]:
    """Nowcast frames: the layer's cadence after its latest observation, to the horizon.

    They move the latest frame with the newest motion field estimated within
    ``MOTION_MAX_AGE`` of it (the latest frame may lack one when frames
    arrived out of order).
    """
    motion = _nowcast_motion(layer, catalog)
    if motion is None:
        return []
    count = horizon_min // layer.cadence_minutes
    return [_nowcast_step(catalog, motion, layer, k) for k in range(1, count + 1)]


def nowcast_at(layer: Layer, catalog: Catalog, time: datetime, horizon_min: int) -> Target | None:
    """The one nowcast at ``time``, without listing them all (cached tiles ask on every request)."""
    motion = _nowcast_motion(layer, catalog)
    if motion is None:
        return None
    k, off_step = divmod(time - catalog.frames[-1].time, timedelta(minutes=layer.cadence_minutes))
    if off_step or not 1 <= k <= horizon_min // layer.cadence_minutes:
        return None
    return _nowcast_step(catalog, motion, layer, k)


def _nowcast_motion(layer: Layer, catalog: Catalog) -> str | None:
    """The motion field nowcasts from the latest frame use."""
    if not layer.nowcast or not catalog.frames:
        return None
    return catalog.nowcast_motion(catalog.frames[-1])


def _nowcast_step(catalog: Catalog, motion: str, layer: Layer, k: int) -> Target:
    base = catalog.frames[-1]
    lead = k * timedelta(minutes=layer.cadence_minutes)
    return Target(base, base.time + lead, lead.total_seconds(), motion)
