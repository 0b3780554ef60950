"""Series exceptions: one occurrence of a Google series moved, changed or cancelled. Pure.

Advoware cannot hold an exception (a series there is one rule), so the sync never carries one into
Advoware and never lets one touch the series (the policy and its reasons: README, "Series
exceptions"). This module reads exceptions, decides for each what the planner does, and keeps the
planner's decision table free of them:

- An *exception* is any Google item with `recurringEventId` (key: its instance id; it carries
  `originalStartTime`). It is never read as a master, never adopted by its marker (exceptions inherit
  the master's private properties), never an orphan, never a deletion.
- A *deviation* is an exception whose mapped content (start, end and the mapped fields; under
  anonymisation only what Google holds of ours) differs from the occurrence the series itself has at
  `originalStartTime`, or a cancelled one. An exception equal to its occurrence is none.
- An *orphan* is an exception whose original start is no occurrence of the series any more (the
  series' time, rule or end changed).

Decisions, per exception of a series the hub links (`decide`):
| exception                 | not write protected                     | write protected / read-only series   |
|---------------------------|-----------------------------------------|--------------------------------------|
| deviation, new or changed | keep_exception + `series_exception_kept`| revert_exception + `..._reverted`     |
| deviation, known as such  | —                                       | — (a kept row cannot stand under WP)  |
| no deviation              | close a standing row (reverted/gone)    | same                                 |
| orphan, still in Google   | drop_exception + `series_exception_dropped` (both)                             |
| orphan, cancelled/removed | close a standing row + `..._dropped` ("removed by Google")                     |
A series created in Google and not linked: its exceptions are recorded (keep_exception, no report of
their own) and while any deviation stands the series is not created in Advoware (`unsupported_rule`,
"series with exceptions"); once none stands it is carried like any new series.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from dateutil.rrule import rrulestr

from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.mapping_google import from_google, is_cancelled, when_value
from include.calendar_engine.models import Appointment
from include.calendar_engine.plan import (
    CloseException,
    DropException,
    ExceptionAction,
    KeepException,
    RevertException,
)
from include.calendar_engine.recurrence import dtstart_of, to_rrule
from include.calendar_engine.timeutil import normalize

CANCELLED = "cancelled"  # the fingerprint of a cancelled exception (it has no content)
MOVED, CHANGED = "moved", "changed"  # kinds of a deviation (besides CANCELLED)
# hub row statuses: standing (kept in Google), or closed: reverted (by us), dropped (deleted by us as
# an orphan), gone (no longer an exception: Google removed it, or a person undid it)
STANDING, REVERTED, DROPPED, GONE = "standing", "reverted", "dropped", "gone"
KEPT_REPORT, REVERTED_REPORT, DROPPED_REPORT = (
    "series_exception_kept",
    "series_exception_reverted",
    "series_exception_dropped",
)
UNSUPPORTED_DETAIL = "series with exceptions"
# an exception's mapped fields (to_google's keys): what a revert writes back and a re-apply writes again
EXCEPTION_FIELDS = ("summary", "description", "location", "start", "end", "visibility", "reminders", "status")


@dataclass(frozen=True)
class HubException:
    """A row of the hub's series_exceptions: what the sync knows of one exception."""

    employee: str
    instance_id: str
    master_event_id: str
    original_start: str
    frnr: int | None = None
    kind: str = MOVED
    fingerprint: str = ""
    status: str = STANDING

    @property
    def standing(self) -> bool:
        return self.status == STANDING


@dataclass
class ExceptionItem:
    """One exception as Google listed it."""

    raw: dict[str, Any]
    id: str
    master_id: str
    original: datetime | date | None  # None: unreadable originalStartTime
    cancelled: bool
    appt: Appointment | None  # its content as a single appointment (None: cancelled or unreadable)

    @property
    def original_start(self) -> str:
        return original_key(self.original)

    @property
    def fp(self) -> str:
        if self.cancelled:
            return CANCELLED
        return fingerprint(self.appt) if self.appt is not None else ""


def is_exception(raw: dict[str, Any]) -> bool:
    return bool(raw.get("recurringEventId"))


def original_key(value: datetime | date | None) -> str:
    """The canonical text of an original start: Berlin ISO date-time, or the date."""
    if value is None:
        return ""
    return normalize(value).isoformat() if isinstance(value, datetime) else value.isoformat()


def parse_original(text: str) -> datetime | date | None:
    """An original start back from its canonical text (`original_key`)."""
    try:
        return datetime.fromisoformat(text) if "T" in text else date.fromisoformat(text)
    except ValueError:
        return None


def _read_original(when: Any) -> datetime | date | None:
    if not isinstance(when, dict):
        return None
    try:
        return when_value(when)
    except ValueError:
        return None


def read_exception(raw: dict[str, Any]) -> ExceptionItem:
    cancelled = is_cancelled(raw)
    appt = None
    if not cancelled:
        single = {k: v for k, v in raw.items() if k not in ("recurringEventId", "originalStartTime", "recurrence")}
        parsed = from_google(single)
        appt = parsed if isinstance(parsed, Appointment) else None
    return ExceptionItem(
        raw=raw,
        id=str(raw["id"]),
        master_id=str(raw["recurringEventId"]),
        original=_read_original(raw.get("originalStartTime")),
        cancelled=cancelled,
        appt=appt,
    )


def occurrence_at(series: Appointment, original: datetime | date | None) -> Appointment | None:
    """The occurrence of `series` that starts at `original` as a single appointment (None: the
    series has no occurrence there). Expanded with dateutil in Berlin wall time, as Google expands
    our masters (their start.timeZone is Europe/Berlin)."""
    if series.recurrence is None or original is None or isinstance(original, datetime) == series.all_day:
        return None
    start = dtstart_of(series.start, all_day=series.all_day)
    try:
        rule = rrulestr(to_rrule(series.recurrence, all_day=series.all_day), dtstart=start)
        wanted = (
            datetime.combine(original, datetime.min.time()) if series.all_day else normalize(original)  # type: ignore[arg-type]
        )
        hit = rule.after(wanted - timedelta(seconds=1), inc=False)
    except (ValueError, TypeError):
        return None
    if hit != wanted:
        return None
    duration = series.duration()
    if series.all_day:
        first: datetime | date = original
        return replace(series, start=first, end=first + duration, recurrence=None)
    begin = normalize(original)  # type: ignore[arg-type]
    return replace(series, start=begin, end=normalize(begin + duration), recurrence=None)


def deviation(exc: ExceptionItem, occurrence: Appointment, comparable: Any) -> str | None:
    """CANCELLED, MOVED (other start or end), CHANGED (other mapped fields) or None (equal)."""
    if exc.cancelled:
        return CANCELLED
    if exc.appt is None:
        return CHANGED  # something we cannot read: never equal
    mine, theirs = comparable(exc.appt), comparable(occurrence)
    if (mine["start"], mine["end"], mine["all_day"]) != (theirs["start"], theirs["end"], theirs["all_day"]):
        return MOVED
    return CHANGED if mine != theirs else None


@dataclass(frozen=True)
class Decision:
    """What to do with one exception: an action's class (None: nothing), the hub status it leaves,
    the report (None: none) and its detail (ids only)."""

    action: type[ExceptionAction] | None
    status: str | None = None
    report: str | None = None
    detail: str = ""


NOTHING = Decision(None)


def decide(
    exc: ExceptionItem, occurrence: Appointment | None, row: HubException | None, *, protected: bool, comparable: Any
) -> tuple[Decision, str | None]:
    """The decision for an exception of a linked series (the module's table) and its deviation kind."""
    if occurrence is None:  # an orphan: the series has no occurrence at its original start any more
        if exc.cancelled:  # Google removed it (or it was cancelled): nothing shows, only bookkeeping
            if row is not None and row.standing:
                return Decision(CloseException, GONE, DROPPED_REPORT, "removed by Google"), None
            return NOTHING, None
        return Decision(DropException, DROPPED, DROPPED_REPORT, "orphan of a changed series"), None
    kind = deviation(exc, occurrence, comparable)
    if kind is None:
        if row is not None and row.standing:
            return Decision(CloseException, GONE, DROPPED_REPORT, "no longer an exception"), None
        return NOTHING, None
    if protected:
        return Decision(RevertException, REVERTED, REVERTED_REPORT, kind), kind
    if row is not None and row.standing and row.fingerprint == exc.fp:
        return NOTHING, kind  # known and unchanged: reported when it appeared
    return Decision(KeepException, STANDING, KEPT_REPORT, kind), kind
