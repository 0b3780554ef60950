"""Recurring series as Google holds them: occurrences, instance ids, virtual instances.

A master (an event with `recurrence`) is expanded with dateutil (RRULE, RDATE, EXRULE, EXDATE) in
the zone of its `start.timeZone`, so its wall clock holds across DST. An occurrence that no stored
exception replaces is *virtual*: it exists only as an expansion, with the id
`{masterId}_{yyyymmddThhmmssZ}` (the original start in UTC; all-day: `{masterId}_{yyyymmdd}`).
A write to an instance id *materialises* an exception: a stored event copied from the master (no
`recurrence`) with `recurringEventId` and `originalStartTime`, then the write applied to it.

Pure functions over the store's records; the store decides when to call them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from typing import Any

from dateutil import rrule

from . import event_model as em

# What a master timing change (start, end, start.timeZone, recurrence) does to its exceptions.
# Google documents only that "this and following" resets later exceptions; which exceptions survive
# an "all events" timing change is not documented, so the sandbox offers three models:
#   anchor: an exception whose original start is no longer an occurrence is removed, others stay
#   keep:   every exception stays (orphans included)
#   reset:  every exception is removed
TIMING_MODELS = ("anchor", "keep", "reset")
# An open-ended series is expanded at most this far (Google caps expansion too; its limit is not
# documented). 1000 weekly occurrences are 19 years.
EXPANSION_LIMIT = 1000
INSTANCE_ID_RE = re.compile(r"^(?P<master>[a-v0-9]{5,1024})_(?P<stamp>\d{8}(T\d{6}Z)?)$")
# Fields that are the event's identity or timing: never copied from master to exception by the
# field-by-field propagation of a master write.
NOT_PROPAGATED = frozenset(
    {
        "kind",
        "etag",
        "id",
        "htmlLink",
        "created",
        "updated",
        "creator",
        "organizer",
        "iCalUID",
        "recurrence",
        "start",
        "end",
        "sequence",
        "status",
        "recurringEventId",
        "originalStartTime",
    }
)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a series: its start (UTC instant; all-day: `day`) and its length."""

    instant: datetime  # aware, UTC (all-day: midnight of `day` in the calendar's zone)
    day: date | None
    duration: timedelta  # timed: the master's end - start; all-day: whole days

    @property
    def key(self) -> str:
        """The suffix of the instance id."""
        if self.day is not None:
            return self.day.strftime("%Y%m%d")
        return self.instant.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def instance_id(master_id: str, occ: Occurrence) -> str:
    return f"{master_id}_{occ.key}"


def split_instance_id(event_id: str) -> tuple[str, str] | None:
    """(master id, key) of an instance id, else None (base32hex ids never contain "_")."""
    m = INSTANCE_ID_RE.match(event_id)
    return (m.group("master"), m.group("stamp")) if m else None


def master_zone(start: em.When, calendar_tz: str) -> str:
    return str(start.stored.get("timeZone") or calendar_tz)


def _rules(lines: list[str], dtstart: datetime) -> rrule.rruleset:
    text = "\n".join(lines)
    try:
        return rrule.rrulestr(text, dtstart=dtstart, forceset=True)
    except ValueError:
        if dtstart.tzinfo is None:
            raise
        # A floating (or date) UNTIL with an aware start: expand in wall time of the zone instead.
        return rrule.rrulestr(text, dtstart=dtstart.replace(tzinfo=None), forceset=True)


def occurrences(start: em.When, end: em.When, recurrence: list[str], calendar_tz: str) -> Iterator[Occurrence]:
    """Every occurrence of a master, in order (at most EXPANSION_LIMIT). Raises ValueError for a rule
    dateutil cannot expand."""
    if start.day is not None:
        days = max(1, ((end.day or start.day) - start.day).days)
        for dt in islice(_rules(recurrence, datetime.combine(start.day, datetime.min.time())), EXPANSION_LIMIT):
            day = dt.date()
            midnight = datetime(day.year, day.month, day.day, tzinfo=em.zone(calendar_tz)).astimezone(UTC)
            yield Occurrence(midnight, day, timedelta(days=days))
        return
    tz = em.zone(master_zone(start, calendar_tz))
    duration = end.instant - start.instant
    for dt in islice(_rules(recurrence, start.instant.astimezone(tz)), EXPANSION_LIMIT):
        aware = dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)
        yield Occurrence(aware.astimezone(UTC), None, duration)


def find(start: em.When, end: em.When, recurrence: list[str], calendar_tz: str, key: str) -> Occurrence | None:
    """The occurrence whose instance-id suffix is `key`, if the series has it."""
    if (start.day is None) != ("T" in key):
        return None  # a timed series has no all-day instance ids, and the other way round
    try:
        for occ in occurrences(start, end, recurrence, calendar_tz):
            if occ.key == key:
                return occ
            if occ.key > key:
                return None  # keys sort like the occurrences: it cannot come later
    except (ValueError, TypeError):
        return None
    return None


def when_of(occ: Occurrence, master_when: em.When, *, end: bool) -> em.When:
    """A stored start (or end) of the occurrence, in the master's form (same timeZone key)."""
    tz_name = master_when.stored.get("timeZone")
    if occ.day is not None:
        day = occ.day + (occ.duration if end else timedelta(0))
        stored: dict[str, Any] = {"date": day.isoformat()}
        if tz_name:
            stored["timeZone"] = tz_name
        return em.When(stored, occ.instant + (occ.duration if end else timedelta(0)), day)
    instant = occ.instant + (occ.duration if end else timedelta(0))
    stored = {"dateTime": instant.astimezone(UTC).isoformat()}
    if tz_name:
        stored["timeZone"] = tz_name
    return em.When(stored, instant, None)


def original_when(occ: Occurrence, master_start: em.When) -> em.When:
    """`originalStartTime` of an occurrence (stored form: like a start)."""
    return when_of(occ, master_start, end=False)


def instance_resource(master_res: dict[str, Any], occ: Occurrence) -> dict[str, Any]:
    """The fields of a virtual instance (start, end and originalStartTime are rendered apart)."""
    res = copy.deepcopy(master_res)
    res.pop("recurrence", None)
    res["id"] = instance_id(master_res["id"], occ)
    res["recurringEventId"] = master_res["id"]
    return res


def propagate_fields(old_master: dict[str, Any], new_master: dict[str, Any], exception: dict[str, Any]) -> bool:
    """Google's "all events" edit: a field the exception still holds with the master's old value
    takes the new value; its own overrides stay. Returns whether the exception changed."""
    changed = False
    for key in (set(old_master) | set(new_master)) - NOT_PROPAGATED:
        old, new = old_master.get(key), new_master.get(key)
        if old == new or exception.get(key) != old:
            continue
        if new is None:
            exception.pop(key, None)
        else:
            exception[key] = copy.deepcopy(new)
        changed = True
    return changed
