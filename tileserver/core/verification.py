"""The stored record of live nowcast verification, and the scores pooled from it.

Every observation that arrives scores the nowcasts that were valid at its time
(``ingest/verify.py``). Each scored nowcast is a *case*: its valid time, base
frame, lead and one contingency table per threshold. The record keeps the
cases of a rolling window (``verification/{layer}.json``, see
``tileserver/store/store.py``); scores are computed from counts pooled over the
window (sum the tables, then the ratios), never averaged per case, so a frame
with one rainy cell weighs what it holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from tileserver.core.layers import Layer
from tileserver.core.timeutil import format_utc, parse_utc, utcnow

VERIFICATION_FORMAT = "wxtiles-verification/1"
# Nowcasts are verified up to this lead; past an hour extrapolation has little skill left.
LEAD_HORIZON_MIN = 60
EVENT = "value > threshold (pySTEPS' convention); cells without coverage in either field are left out"

# Columns of a contingency table row (renderers.nowcast.verification.contingency).
COUNTS = ("hits", "misses", "false_alarms", "correct_negatives")


def verified_leads(layer: Layer) -> list[int]:
    """Leads (minutes) scored for a layer: its nowcast steps up to the horizon."""
    step = layer.cadence_minutes
    return list(range(step, LEAD_HORIZON_MIN + 1, step))


@dataclass(frozen=True)
class Case:
    """One nowcast scored against the observation at its valid time."""

    valid: datetime
    base: datetime
    lead_minutes: int
    counts: tuple[tuple[int, int, int, int], ...]  # per threshold: hits, misses, false alarms, correct negatives

    def to_json(self) -> dict[str, Any]:
        return {"valid": format_utc(self.valid), "base": format_utc(self.base), "lead_minutes": self.lead_minutes,
                "counts": [list(row) for row in self.counts]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        counts = tuple(tuple(int(v) for v in row) for row in data["counts"])
        if any(len(row) != 4 or min(row) < 0 for row in counts):
            raise ValueError("a case's counts are four non-negative integers per threshold")
        return cls(parse_utc(data["valid"]), parse_utc(data["base"]), int(data["lead_minutes"]), counts)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Record:
    layer: str
    thresholds: tuple[float, ...]
    cases: tuple[Case, ...] = ()
    # Side of the verification grid's cells, metres (Web Mercator).
    cell_m: float | None = None
    updated: datetime | None = None

    def to_bytes(self) -> bytes:
        doc = {
            "format": VERIFICATION_FORMAT, "layer": self.layer, "updated": format_utc(self.updated or utcnow()),
            "thresholds": list(self.thresholds), "cell_m": self.cell_m, "cases": [c.to_json() for c in self.cases],
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, layer: str, raw: bytes) -> Record:
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("format") != VERIFICATION_FORMAT:
                raise ValueError(f"not a {VERIFICATION_FORMAT} document")
            thresholds = tuple(float(t) for t in doc["thresholds"])
            cases = tuple(Case.from_json(c) for c in doc["cases"])
            if any(len(c.counts) != len(thresholds) for c in cases):
                raise ValueError("a case does not have one table per threshold")
            cell_m = float(doc["cell_m"]) if doc.get("cell_m") is not None else None
            updated = parse_utc(doc["updated"]) if doc.get("updated") else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"verification record of layer {layer!r} is unreadable: {exc}") from exc
        return cls(layer, thresholds, cases, cell_m, updated)

    def scored(self, valid: datetime) -> set[int]:
        """Leads already scored at this valid time (a re-ingest must not count them twice)."""
        return {c.lead_minutes for c in self.cases if c.valid == valid}

    def with_cases(self, new: list[Case], thresholds: tuple[float, ...], cell_m: float, window: timedelta) -> Record:
        """This record with ``new`` added (cases it has already are skipped) and the window rolled on."""
        # Counts at other thresholds or on another grid do not pool with these: start again.
        kept = self.cases if (self.thresholds, self.cell_m) == (thresholds, cell_m) else ()
        have = {(c.valid, c.lead_minutes) for c in kept}
        cases = [*kept, *(c for c in new if (c.valid, c.lead_minutes) not in have)]
        cases.sort(key=lambda c: (c.valid, c.lead_minutes))
        start = window_end(cases) - window if cases else None
        return replace(self, thresholds=thresholds, cell_m=cell_m, updated=utcnow(),
                       cases=tuple(c for c in cases if start is None or c.valid > start))


def window_end(cases: list[Case] | tuple[Case, ...]) -> datetime:
    """The window ends at the newest scored observation, never in the future (as retention does)."""
    return min(max(c.valid for c in cases), utcnow())


def summary(layer: Layer, record: Record | None, window: timedelta) -> dict[str, Any]:
    """Per lead and threshold: pooled counts, CSI, POD and FAR over the window."""
    thresholds = layer.thresholds
    usable = record is not None and record.thresholds == thresholds and record.cases
    cases = list(record.cases) if usable and record else []
    end = window_end(cases) if cases else None
    if end is not None:
        cases = [c for c in cases if c.valid > end - window]
    leads = verified_leads(layer)
    tables = {lead: np.zeros((len(thresholds), 4), dtype=np.int64) for lead in leads}
    counted = {lead: 0 for lead in leads}
    for case in cases:
        if case.lead_minutes in tables:
            tables[case.lead_minutes] += np.asarray(case.counts, dtype=np.int64)
            counted[case.lead_minutes] += 1
    scored = sum(counted.values())
    doc: dict[str, Any] = {
        "layer": layer.id,
        "units": layer.units,
        "thresholds": list(thresholds),
        "event": EVENT,
        "window": {
            "hours": round(window.total_seconds() / 3600, 3),
            "start": format_utc(end - window) if end else None,
            "end": format_utc(end) if end else None,
        },
        "updated": format_utc(record.updated) if record is not None and record.updated else None,
        "cell_km": round(record.cell_m / 1000, 2) if record is not None and record.cell_m else None,
        "cases": scored,
        "observations": len({c.valid for c in cases if c.lead_minutes in tables}),
        "leads": [
            {
                "lead_minutes": lead,
                "cases": counted[lead],
                "thresholds": [
                    {"threshold": threshold, **dict(zip(COUNTS, (int(v) for v in row), strict=True)),
                     **scores(int(row[0]), int(row[1]), int(row[2]))}
                    for threshold, row in zip(thresholds, tables[lead], strict=True)
                ],
            }
            for lead in leads
        ],
    }
    if not scored:
        doc["message"] = (
            "No nowcast has been verified yet: a nowcast is scored when the observation at its valid time arrives, "
            f"{', '.join(str(lead) for lead in leads[:2])}... up to {LEAD_HORIZON_MIN} minutes after an earlier frame with a motion field."
        )
    return doc


def scores(hits: int, misses: int, false_alarms: int) -> dict[str, float | None]:
    """CSI, POD and FAR; None where the denominator is zero (no event forecast or observed)."""

    def ratio(num: int, den: int) -> float | None:
        return round(num / den, 4) if den else None

    return {
        "csi": ratio(hits, hits + misses + false_alarms),
        "pod": ratio(hits, hits + misses),
        "far": ratio(false_alarms, hits + false_alarms),
    }
