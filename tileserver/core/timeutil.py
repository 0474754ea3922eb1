"""ISO 8601 UTC times as wxtiles writes and accepts them."""

from __future__ import annotations

import functools
from datetime import datetime, timezone


class TimeFormatError(ValueError):
    pass


# Frame times outside these years are typing mistakes, and would not round-trip
# through four-digit ISO years.
MIN_YEAR, MAX_YEAR = 1900, 2200


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 instant with an explicit UTC offset (``Z`` or ``+00:00``).

    Naive times are refused: a radar frame time without a zone is ambiguous.
    Frame times are whole seconds, so fractions are dropped.
    """
    try:
        value = datetime.fromisoformat(text)
    except (ValueError, TypeError):
        raise TimeFormatError(f"{text!r} is not an ISO 8601 time such as 2026-11-27T21:40:00Z") from None
    if value.tzinfo is None:
        raise TimeFormatError(f"{text!r} has no time zone; write UTC times with a trailing Z")
    try:
        return checked_utc(value)
    except TimeFormatError:
        raise TimeFormatError(f"{text!r} is outside the years {MIN_YEAR}..{MAX_YEAR}") from None


def checked_utc(value: datetime) -> datetime:
    """``value`` in UTC, whole seconds, within the supported years."""
    try:
        utc = value.astimezone(timezone.utc).replace(microsecond=0)
    except OverflowError:
        raise TimeFormatError(f"{value} is outside the years {MIN_YEAR}..{MAX_YEAR}") from None
    if not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise TimeFormatError(f"{value} is outside the years {MIN_YEAR}..{MAX_YEAR}")
    return utc


@functools.lru_cache(maxsize=4096)  # every tile response names its frame's time
def format_utc(value: datetime) -> str:
    """``2026-11-27T21:40:00Z``: seconds precision, always UTC, always ``Z``."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def compact_utc(value: datetime) -> str:
    """``20261127T214000Z``: the form used in store keys (no colons, sorts by time)."""
    return value.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
