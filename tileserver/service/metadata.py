"""What the server says about its layers: metadata, frame times, nowcast steps and verification."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tileserver.core.layers import LAYERS, Layer
from tileserver.core.timeutil import format_utc
from tileserver.core.verification import summary
from tileserver.service import blend, targets
from tileserver.service.catalogs import Catalogs
from tileserver.service.errors import NotFound
from tileserver.store import Frame


class Metadata:
    def __init__(self, catalogs: Catalogs) -> None:
        self.catalogs = catalogs

    def layer_info(self, layer: Layer, base_url: str, hours: float | None = None) -> dict[str, Any]:
        """A layer's metadata and frame times; ``hours`` keeps only recent ones.

        Recent means within ``hours`` of the newest observation for an observed
        layer; for a forecast layer, the runs issued within ``hours`` of the
        newest run (at least that one) and their valid times.
        """
        catalog = self.catalogs.catalog(layer.id)
        runs = catalog.runs()
        if layer.blend:
            found = self.catalogs.stacks(layer)
            visible = [frame for stack in found for frame in stack.frames]
            stack = blend.resolve(found, "latest")
            latest: Frame | None = stack.frames[0] if stack else None
            newest = max(visible, key=lambda f: f.native_zoom) if visible else None
            times = [stack.time for stack in found]
            if hours is not None and times:
                times = [t for t in times if t >= times[-1] - timedelta(hours=hours)]
        else:
            visible = catalog.visible_frames()
            listed = visible
            if hours is not None and catalog.frames:
                window = timedelta(hours=hours)
                if layer.kind == "forecast":
                    runs = [run for run in runs if run >= runs[-1] - window]
                    listed = [f for f in visible if f.run is not None and f.run >= runs[0]]
                else:
                    listed = [f for f in visible if f.time >= visible[-1].time - window]
            latest = catalog.resolve("latest")
            newest = catalog.frames[-1] if catalog.frames else None
            times = [f.time for f in listed]
        info: dict[str, Any] = {
            "id": layer.id,
            "title": layer.title,
            "units": layer.units,
            "kind": layer.kind,
            "model": layer.model,
            "colormap": layer.colormap,
            "value_range": list(layer.value_range),
            "bounds": list(_union_bounds(visible)) if visible else [-180.0, -85.0511287798066, 180.0, 85.0511287798066],
            "minzoom": 0,
            "maxzoom": newest.native_zoom if newest else 0,
            "cadence_minutes": layer.cadence_minutes,
            "attribution": layer.attribution,
            "frames": [format_utc(t) for t in times],
            "latest": format_utc(latest.time) if latest else None,
            "nowcast": [
                {"time": format_utc(n.time), "lead_minutes": round(n.lead_s / 60)} for n in targets.nowcasts(layer, catalog, self.catalogs.settings.nowcast_horizon_min)
            ],
            "tiles": f"{base_url}tiles/{layer.id}/{{time}}/{{z}}/{{x}}/{{y}}.png",
            "legend": f"{base_url}api/colormaps/{layer.colormap}/legend.png",
        }
        if layer.blend:
            info["blend"] = [self._blend_source(source) for source in layer.blend]
        elif layer.kind == "forecast":
            info["runs"] = [
                {"run": format_utc(run), "frames": [format_utc(f.time) for f in catalog.frames if f.run == run]}
                for run in runs
            ]
        return info

    def _blend_source(self, layer_id: str) -> dict[str, Any]:
        """Which model fills which area of a blend: each source's footprint and newest run, in order of preference."""
        catalog = self.catalogs.catalog(layer_id)
        visible = catalog.visible_frames()
        runs = catalog.runs()
        return {
            "layer": layer_id, "model": LAYERS[layer_id].model,
            "bounds": list(_union_bounds(visible)) if visible else None,
            "newest_run": format_utc(runs[-1]) if runs else None,
        }

    def verification(self, layer: Layer) -> dict[str, Any]:
        """Live verification of the layer's nowcasts: scores pooled over the rolling window."""
        if not layer.nowcast:
            raise NotFound(f"layer {layer.id!r} has no nowcasts to verify")
        return summary(layer, self.catalogs.verification_record(layer.id), self.catalogs.store.retention.verification)


def _union_bounds(frames: list[Frame]) -> tuple[float, float, float, float]:
    # A frame across the antimeridian makes the layer span every longitude:
    # map clients read west > east inconsistently.
    crossing = any(f.bounds[0] > f.bounds[2] for f in frames)
    return (
        -180.0 if crossing else min(f.bounds[0] for f in frames), min(f.bounds[1] for f in frames),
        180.0 if crossing else max(f.bounds[2] for f in frames), max(f.bounds[3] for f in frames),
    )
