"""Tick positions and labels for legends."""

import math

# Steps of 1, 2, 2.5 and 5 times a power of ten read naturally on a scale.
_NICE_MULTIPLES = (1.0, 2.0, 2.5, 5.0)


def nice_ticks(lo: float, hi: float, target: int = 5) -> list[float]:
    """Round-numbered ticks inside [lo, hi], as close to `target` of them as a nice step allows."""
    lo, hi = min(lo, hi), max(lo, hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo == hi:
        return [lo] if math.isfinite(lo) else []
    exponent = math.floor(math.log10((hi - lo) / target))
    best: tuple[tuple[int, int], float, int, int] | None = None
    for power in (exponent - 1, exponent, exponent + 1):
        for multiple in _NICE_MULTIPLES:
            step = multiple * 10.0**power
            # The epsilon keeps ticks that sit exactly on an end despite float error.
            first = math.ceil(lo / step - 1e-9)
            last = math.floor(hi / step + 1e-9)
            count = last - first + 1
            # On a tie prefer more ticks; the legend drops labels that do not fit.
            score = (abs(count - target), -count)
            if best is None or score < best[0]:
                best = (score, step, first, last)
    assert best is not None
    _, step, first, last = best
    decimals = max(0, 1 - math.floor(math.log10(step)))
    return [round(k * step, decimals) + 0.0 for k in range(first, last + 1)]


def format_value(value: float) -> str:
    """Short label for a value: integers without a decimal point, others to 4 significant digits."""
    if value == 0:
        return "0"  # also covers -0.0
    if float(value).is_integer() and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def display_units(units: str) -> str:
    """Units as shown to people; data files use ASCII spellings (UDUNITS style)."""
    return {"degC": "°C", "degF": "°F"}.get(units, units)
