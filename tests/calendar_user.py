"""What a person does by hand in both systems, for the stateful calendar test: appointments whose title
starts with a token ("T7 r2 ...") so each item can be followed across both sides and revisions.

Advoware: REST calls through an own client (never write protected: the person is not the sync).
Google: API calls through an own client as the calendar's owner principal (the service account in
shared mode), with server-made ids and no marker, as in the Google Calendar UI.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from include.advoware.client import AdvowareClient
from include.calendar_engine.timeutil import BERLIN
from include.google_calendar.service import CalendarSession

PLACES = ("", "Saal 3", "Kanzlei", "Videokonferenz")


@dataclass(frozen=True)
class Content:
    """One appointment as a person enters it; `day` counts from today (always inside the window)."""

    day: int
    start_q: int = 0  # quarter hours after 08:00
    dur_q: int = 4
    all_day: bool = False
    days: int = 1  # all-day length
    place: str = ""
    private: bool = False
    weekly: int = 0  # > 0: a weekly series over that many weeks (Advoware only)

    def moved(self, by: int) -> Content:
        return replace(self, day=self.day + by) if not self.weekly else self


def token_of(title: str | None) -> str | None:
    head = (title or "").split(" ", 1)[0]
    return head if head[:1] in ("T", "S", "A") and head[1:].isdigit() else None


def _begin(c: Content, today: date) -> datetime:
    minutes = 8 * 60 + 15 * c.start_q
    return datetime.combine(today + timedelta(days=c.day), time(minutes // 60, minutes % 60))


def advoware_body(c: Content, title: str, employee: str, today: date) -> dict[str, Any]:
    begin = _begin(c, today)
    day = begin.date()
    if c.all_day:
        last = day + timedelta(days=c.days - 1)
        when = {"datum": f"{day}T00:00:00", "uhrzeitVon": "00:00:00", "datumBis": f"{last}T23:59:00",
                "uhrzeitBis": "23:59:00", "abwesenheit": 1}
    else:
        end = begin + timedelta(minutes=15 * c.dur_q)
        when = {"datum": begin.isoformat(), "uhrzeitVon": begin.strftime("%H:%M:%S"),
                "datumBis": end.isoformat(), "uhrzeitBis": end.strftime("%H:%M:%S"), "abwesenheit": 0}
        if c.weekly:
            until = day + timedelta(weeks=c.weekly)
            when.update(datumBis=f"{until}T{end:%H:%M:%S}", dauertermin=1, turnus=1, turnusArt=2)
    return {"text": title, "notiz": "", "ort": "" if c.all_day else c.place, "kuerzel": employee,
            "anwalt": employee, "privat": int(c.private), **when}


def google_times(c: Content, today: date) -> dict[str, Any]:
    begin = _begin(c, today)
    if c.all_day:
        return {"start": {"date": begin.date().isoformat()},
                "end": {"date": (begin.date() + timedelta(days=c.days)).isoformat()}}
    start = begin.replace(tzinfo=BERLIN)
    end = start + timedelta(minutes=15 * c.dur_q)
    return {"start": {"dateTime": start.isoformat(), "timeZone": "Europe/Berlin"},
            "end": {"dateTime": end.isoformat(), "timeZone": "Europe/Berlin"}}


def google_body(c: Content, title: str, today: date) -> dict[str, Any]:
    return {"summary": title, "location": "" if c.all_day else c.place,
            "visibility": "private" if c.private else "default", **google_times(c, today)}


class User:
    """The person at the keyboard (an own Advoware client and Google session)."""

    def __init__(self, advoware: AdvowareClient, google: CalendarSession, today: date) -> None:
        self.advoware = advoware
        self.google = google
        self.today = today

    # -- Advoware --------------------------------------------------------------------------------------
    def create_advoware(self, employee: str, c: Content, title: str) -> int:
        return int(self.advoware.create_termin(advoware_body(c, title, employee, self.today))["frNr"])

    def edit_advoware(self, termin: dict[str, Any], title: str, *, place: str | None, shift: int) -> None:
        body = {**termin, "text": title}
        if place is not None and not termin.get("abwesenheit"):
            body["ort"] = place
        if shift and not termin.get("dauertermin"):
            for key in ("datum", "datumBis"):
                if termin.get(key):
                    moved = datetime.fromisoformat(str(termin[key])) + timedelta(days=shift)
                    body[key] = moved.isoformat()
        self.advoware.update_termin(int(termin["frNr"]), body)

    def delete_advoware(self, termin: dict[str, Any]) -> None:
        self.advoware.delete_termin(int(termin["frNr"]))

    # -- Google ----------------------------------------------------------------------------------------
    def create_google(self, calendar_id: str, c: Content, title: str) -> str:
        body = google_body(c, title, self.today)
        event = self.google.execute(lambda s: s.events().insert(calendarId=calendar_id, body=body),
                                    "events.insert")
        return str(event["id"])

    def edit_google(self, calendar_id: str, event: dict[str, Any], title: str, *, place: str | None,
                    shift: int) -> None:
        patch: dict[str, Any] = {"summary": title}
        if place is not None and "dateTime" in (event.get("start") or {}):
            patch["location"] = place
        if shift and not event.get("recurrence"):
            for key in ("start", "end"):
                when = dict(event[key])
                if when.get("dateTime"):
                    when["dateTime"] = (datetime.fromisoformat(when["dateTime"]) + timedelta(days=shift)).isoformat()
                else:
                    when["date"] = (date.fromisoformat(when["date"]) + timedelta(days=shift)).isoformat()
                patch[key] = when
        self.google.execute(lambda s: s.events().patch(calendarId=calendar_id, eventId=event["id"], body=patch),
                            "events.patch")

    def delete_google(self, calendar_id: str, event: dict[str, Any]) -> None:
        self.google.execute(lambda s: s.events().delete(calendarId=calendar_id, eventId=event["id"]),
                            "events.delete")
