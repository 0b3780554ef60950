"""Time zones other than Berlin on the Google side. Pure.

Single events need nothing here: every start and end is read as an instant (offset or `timeZone`,
start and end each in its own zone) and normalised to a Berlin wall time, which is all Advoware holds.

A series is different: Google expands it in its start's `timeZone`, Advoware repeats one Berlin wall
time. A weekly 10:00 in New York is 16:00 in Berlin for most of the year but 15:00 in the weeks when
only one of the two zones has switched to summer time. Carried as a Berlin series, those occurrences
would move by an hour, so such a series is reported as one Advoware cannot hold (never flattened). A
series in another zone whose Berlin wall time never changes (Paris, Vienna; or one that ends before
the zones' rules part) is carried as it is.
"""

from __future__ import annotations

from datetime import datetime
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrulestr

from include.calendar_engine.timeutil import BERLIN, TZ_NAME

# Occurrences compared for a rule (an open-ended weekly rule: about eight years, every DST change).
_COMPARE = 400


def _zone(name: str | None) -> ZoneInfo | None:
    if not name or name == TZ_NAME:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def berlin_time_varies(rrule_line: str, start_when: dict[str, Any], start: datetime) -> bool:
    """Does the series of `rrule_line`, expanded in its start's time zone, fall on different Berlin
    wall times? (`start`: the first occurrence as an aware datetime.)"""
    zone = _zone(start_when.get("timeZone"))
    if zone is None:
        return False
    first = start.astimezone(zone)
    line = rrule_line.split(":", 1)[1] if ":" in rrule_line else rrule_line
    try:
        rule = rrulestr(line, dtstart=first)
    except ValueError:  # a floating UNTIL: read the rule in the zone's wall time
        try:
            rule = rrulestr(line, dtstart=first.replace(tzinfo=None))
        except ValueError:
            return False
    wall = first.astimezone(BERLIN).time()
    for occurrence in islice(rule, _COMPARE):
        local = occurrence if occurrence.tzinfo is not None else occurrence.replace(tzinfo=zone)
        if local.astimezone(BERLIN).time() != wall:
            return True
    return False
