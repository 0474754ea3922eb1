"""CF time coordinates to real UTC datetimes, honouring the coordinate's calendar.

Only calendars whose dates are real dates can be placed on a map's timeline:
``standard``/``gregorian``/``proleptic_gregorian``/``utc`` directly, ``julian`` by
converting its dates (its days are real days, its dates lag ours). Model
calendars without real dates (``noleap``, ``360_day``...) are refused: a 360-day
year has no 2099-06-01 that is a real day.
"""

from __future__ import annotations

from datetime import datetime, timezone

import cftime

from ingest.errors import IngestError

_REAL = {"standard", "gregorian", "proleptic_gregorian", "utc"}
_MODEL = {"noleap", "365_day", "all_leap", "366_day", "360_day", "none"}


def cf_time(raw: str | float, units: str, calendar: str | None) -> datetime:
    """The UTC datetime of one CF time value ``raw`` in ``units`` ("hours since 1800-01-01")."""
    name = (calendar or "standard").strip().lower()
    if name in _MODEL:
        raise IngestError(f"uses the CF calendar {name!r}, a model calendar whose dates are not real dates; wxtiles cannot place them on the UTC timeline")
    if name not in _REAL and name != "julian":
        raise IngestError(f"uses the CF calendar {name!r}, which wxtiles cannot map to UTC dates")
    try:
        value = float(raw)
        if name == "julian":
            moment = cftime.num2date(value, units, calendar="julian").change_calendar("proleptic_gregorian")
            result = datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, moment.microsecond)
        else:
            # cftime's "standard" switches to the Julian calendar before 1582; the
            # times we take (1900 to 2200) are the same in both.
            result = cftime.num2pydate(value, units.replace(" UTC", "").replace("Z", ""), calendar="proleptic_gregorian" if name == "utc" else name)
    except (ValueError, TypeError, OverflowError) as exc:
        reason = str(exc).split(". ")[0]
        raise IngestError(f"has a time coordinate {raw!r} in {units!r} that wxtiles cannot read ({reason})") from None
    return result.replace(tzinfo=timezone.utc) if result.tzinfo is None else result.astimezone(timezone.utc)
