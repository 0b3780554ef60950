"""Canonical `Appointment` ⇄ Google Calendar event body.

Event layout written by `to_google`:
- `id`: `event_id(employee, frnr)` = base32hex(sha256("advoware:{employee}:{frnr}")) lower case
  without padding (52 chars of a-v0-9); stable, so a retried insert gets 409 instead of a duplicate.
- `summary`/`description`/`location`: title / note / location. The matter is shown at the end of
  the description as `\\n\\nAkte: {nr} – {azRubrum}` and kept machine-readable in the private
  extended properties `advowareAkteNr`, `advowareAzRubrum` (reading strips exactly that footer).
- `visibility`: "private" for private appointments, else "default" (reading: private|confidential).
- `start`/`end`: timed `{"dateTime": "2025-03-30T09:00:00+02:00", "timeZone": "Europe/Berlin"}`,
  all-day `{"date": "2025-03-10"}` with exclusive end (+ timeZone on a series).
- `recurrence`: `["RRULE:FREQ=..;INTERVAL=n[;UNTIL=..]"]` (see recurrence.py).
- `reminders`: `{"useDefault": false, "overrides": [{"method": "popup", "minutes": m}]}` (no
  reminder: empty overrides). Reading takes the smallest override; `useDefault` means none.
- `extendedProperties.private`: `advowareFrNr`, `syncOrigin` ("advoware"|"google"), `employee`
  (+ the matter keys). Keys ≤ 44 chars, values cut to 1024.
- anonymise (policy): summary "Termin", no description, no location, no matter toward Google.

Reading (`from_google`) returns an `Unsupported` for what Advoware cannot hold: an instance
exception (`recurringEventId`), mixed date/dateTime, a rule per recurrence.py, a series occurrence
longer than 23:59 h (all-day: longer than one day).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from include.calendar_engine.ids import event_id
from include.calendar_engine.marker import (
    KEY_MATTER_NR,
    KEY_MATTER_RUBRUM,
    ORIGIN_ADVOWARE,
    marker_of,
    marker_properties,
    private_properties,
)
from include.calendar_engine.models import Appointment, Matter, Unsupported, clean_text
from include.calendar_engine.recurrence import from_google_recurrence, occurrence_limit_ok, to_rrule
from include.calendar_engine.timeutil import TZ_NAME, normalize
from include.calendar_engine.zones import berlin_time_varies

MAX_KEY, MAX_VALUE = 44, 1024
ANONYMOUS_TITLE = "Termin"


def matter_footer(matter: Matter) -> str:
    return f"Akte: {matter.nr} – {matter.az_rubrum}" if matter.az_rubrum else f"Akte: {matter.nr}"


def _props(props: dict[str, str]) -> dict[str, str]:
    return {k[:MAX_KEY]: v[:MAX_VALUE] for k, v in props.items()}


def _when(value: datetime | date, *, all_day: bool, series: bool) -> dict[str, str]:
    if all_day:
        out = {"date": value.isoformat()}
        if series:
            out["timeZone"] = TZ_NAME
        return out
    return {"dateTime": normalize(value).isoformat(), "timeZone": TZ_NAME}  # type: ignore[arg-type]


def to_google(
    appt: Appointment,
    *,
    employee: str,
    frnr: int | None,
    origin: str = ORIGIN_ADVOWARE,
    anonymize: bool = False,
    google_id: str | None = None,
) -> dict[str, Any]:
    """Full event body (for insert or update). `google_id` defaults to `event_id(employee, frnr)`."""
    props = marker_properties(employee, frnr, origin)
    description = ""
    if anonymize:
        title, location = ANONYMOUS_TITLE, ""
    else:
        title, location, description = appt.title, appt.location, appt.note
        if appt.matter is not None:
            footer = matter_footer(appt.matter)
            description = f"{description}\n\n{footer}" if description else footer
            props[KEY_MATTER_NR] = appt.matter.nr
            props[KEY_MATTER_RUBRUM] = appt.matter.az_rubrum
    series = appt.recurrence is not None
    body: dict[str, Any] = {
        "summary": title,
        "description": description,
        "location": location,
        "start": _when(appt.start, all_day=appt.all_day, series=series),
        "end": _when(appt.end, all_day=appt.all_day, series=series),
        "visibility": "private" if appt.private else "default",
        "reminders": {
            "useDefault": False,
            "overrides": []
            if appt.reminder_minutes is None
            else [{"method": "popup", "minutes": appt.reminder_minutes}],
        },
        "extendedProperties": {"private": _props(props)},
    }
    if series:
        body["recurrence"] = [to_rrule(appt.recurrence, all_day=appt.all_day)]  # type: ignore[arg-type]
    gid = google_id or (event_id(employee, frnr) if frnr is not None else None)
    if gid:
        body["id"] = gid
    return body


def is_cancelled(event: dict[str, Any]) -> bool:
    return event.get("status") == "cancelled"


def _read_when(when: dict[str, Any]) -> datetime | date | None:
    if when.get("dateTime"):
        dt = datetime.fromisoformat(str(when["dateTime"]).replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=ZoneInfo(when.get("timeZone") or TZ_NAME))
        return normalize(dt)
    if when.get("date"):
        return date.fromisoformat(str(when["date"])[:10])
    return None


def _reminder(event: dict[str, Any]) -> int | None:
    rem = event.get("reminders") or {}
    if rem.get("useDefault"):
        return None
    minutes = [int(o["minutes"]) for o in rem.get("overrides") or [] if o.get("minutes") is not None]
    return min(minutes) if minutes else None


def from_google(event: dict[str, Any]) -> Appointment | Unsupported:
    if event.get("recurringEventId"):
        return Unsupported("instance exception of a recurring event")
    try:
        start = _read_when(event.get("start") or {})
        end = _read_when(event.get("end") or {})
    except ValueError:
        return Unsupported("unreadable start/end")
    if start is None or end is None:
        return Unsupported("event without start/end")
    all_day = not isinstance(start, datetime)
    if all_day == isinstance(end, datetime):
        return Unsupported("mixed date and dateTime")
    if end < start:
        end = start
    recurrence = None
    if event.get("recurrence"):
        rec = from_google_recurrence(list(event["recurrence"]), start, all_day=all_day)
        if isinstance(rec, Unsupported):
            return rec
        if not occurrence_limit_ok(end - start, all_day=all_day):
            return Unsupported("series occurrence longer than Advoware allows")
        rules = [ln for ln in event["recurrence"] if str(ln).upper().startswith("RRULE:")]
        if not all_day and berlin_time_varies(rules[0], event.get("start") or {}, start):  # type: ignore[arg-type]
            return Unsupported("series in another time zone: its Berlin times change with daylight saving")
        recurrence = rec
    props = private_properties(event)
    matter = None
    if props.get(KEY_MATTER_NR) or props.get(KEY_MATTER_RUBRUM):
        matter = Matter(nr=clean_text(props.get(KEY_MATTER_NR)), az_rubrum=clean_text(props.get(KEY_MATTER_RUBRUM)))
    note = clean_text(event.get("description"))
    if matter is not None:
        footer = matter_footer(matter)
        if note == footer:
            note = ""
        elif note.endswith("\n\n" + footer):
            note = note[: -len(footer) - 2].strip()
    employee, frnr, _origin = marker_of(event)
    return Appointment(
        start=start,
        end=end,
        all_day=all_day,
        title=clean_text(event.get("summary")),
        note=note,
        location=clean_text(event.get("location")),
        private=event.get("visibility") in ("private", "confidential"),
        recurrence=recurrence,
        matter=matter,
        reminder_minutes=_reminder(event),
        frnr=frnr,
        employee=employee,
    )


def when_value(when: dict[str, Any]) -> datetime | date | None:
    """A start or end as the mapping reads it (a Berlin instant, or a date); ValueError if unreadable."""
    return _read_when(when)


def reminder_of(event: dict[str, Any]) -> int | None:
    """The reminder as the mapping reads it (minutes of the earliest override; None: none or default)."""
    return _reminder(event)
