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
from include.calendar_engine.recurrence import until_value
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
        when = {
            "datum": f"{day}T00:00:00",
            "uhrzeitVon": "00:00:00",
            "datumBis": f"{last}T23:59:00",
            "uhrzeitBis": "23:59:00",
            "abwesenheit": 1,
        }
    else:
        end = begin + timedelta(minutes=15 * c.dur_q)
        when = {
            "datum": begin.isoformat(),
            "uhrzeitVon": begin.strftime("%H:%M:%S"),
            "datumBis": end.isoformat(),
            "uhrzeitBis": end.strftime("%H:%M:%S"),
            "abwesenheit": 0,
        }
        if c.weekly:
            until = day + timedelta(weeks=c.weekly)
            when.update(datumBis=f"{until}T{end:%H:%M:%S}", dauertermin=1, turnus=1, turnusArt=2)
    return {
        "text": title,
        "notiz": "",
        "ort": "" if c.all_day else c.place,
        "kuerzel": employee,
        "anwalt": employee,
        "privat": int(c.private),
        **when,
    }


def google_times(c: Content, today: date) -> dict[str, Any]:
    begin = _begin(c, today)
    if c.all_day:
        return {
            "start": {"date": begin.date().isoformat()},
            "end": {"date": (begin.date() + timedelta(days=c.days)).isoformat()},
        }
    start = begin.replace(tzinfo=BERLIN)
    end = start + timedelta(minutes=15 * c.dur_q)
    return {
        "start": {"dateTime": start.isoformat(), "timeZone": "Europe/Berlin"},
        "end": {"dateTime": end.isoformat(), "timeZone": "Europe/Berlin"},
    }


def google_body(c: Content, title: str, today: date) -> dict[str, Any]:
    body = {
        "summary": title,
        "location": "" if c.all_day else c.place,
        "visibility": "private" if c.private else "default",
        **google_times(c, today),
    }
    if c.weekly and not c.all_day:  # a weekly series made in Google (Europe/Berlin, ends on a day)
        last = _begin(c, today).date() + timedelta(weeks=c.weekly)
        body["recurrence"] = [f"RRULE:FREQ=WEEKLY;UNTIL={until_value(last, all_day=False)}"]
    return body


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
        event = self.google.execute(lambda s: s.events().insert(calendarId=calendar_id, body=body), "events.insert")
        return str(event["id"])

    def edit_google(
        self, calendar_id: str, event: dict[str, Any], title: str, *, place: str | None, shift: int
    ) -> None:
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
        self.google.execute(
            lambda s: s.events().patch(calendarId=calendar_id, eventId=event["id"], body=patch), "events.patch"
        )

    def delete_google(self, calendar_id: str, event: dict[str, Any]) -> None:
        self.google.execute(lambda s: s.events().delete(calendarId=calendar_id, eventId=event["id"]), "events.delete")

    # -- Google series: one occurrence, or the whole series ("all events") ---------------------------------
    def instances(self, calendar_id: str, master_id: str, *, show_deleted: bool = False) -> list[dict[str, Any]]:
        page = self.google.execute(
            lambda s: s.events().instances(
                calendarId=calendar_id,
                eventId=master_id,
                showDeleted=show_deleted,
                maxResults=2500,
                timeZone="Europe/Berlin",
            ),
            "events.instances",
        )
        return list(page["items"])

    def move_occurrence(self, calendar_id: str, instance: dict[str, Any], hours: int) -> None:
        body = {
            key: {
                "dateTime": (datetime.fromisoformat(instance[key]["dateTime"]) + timedelta(hours=hours)).isoformat(),
                "timeZone": "Europe/Berlin",
            }
            for key in ("start", "end")
        }
        self.google.execute(
            lambda s: s.events().patch(calendarId=calendar_id, eventId=instance["id"], body=body), "events.patch"
        )

    def cancel_occurrence(self, calendar_id: str, instance: dict[str, Any]) -> None:
        self.google.execute(
            lambda s: s.events().delete(calendarId=calendar_id, eventId=instance["id"]), "events.delete"
        )

    def change_master(self, calendar_id: str, master: dict[str, Any], title: str, how: str) -> None:
        """An "all events" edit in Google: the title, and one hour later, or the series a week
        shorter or longer (its UNTIL)."""
        patch: dict[str, Any] = {"summary": title}
        if how == "later" and datetime.fromisoformat(master["end"]["dateTime"]).astimezone(BERLIN).hour < 22:
            for key in ("start", "end"):
                at = datetime.fromisoformat(master[key]["dateTime"]) + timedelta(hours=1)
                patch[key] = {"dateTime": at.isoformat(), "timeZone": master[key].get("timeZone", "Europe/Berlin")}
        elif how in ("shorter", "longer"):
            (rule,) = [r for r in master["recurrence"] if r.startswith("RRULE:")]
            head, _, until = rule.partition(";UNTIL=")
            if until:
                first = date.fromisoformat(master["start"]["dateTime"][:10])
                day = datetime.strptime(until[:8], "%Y%m%d").date() + timedelta(weeks=-1 if how == "shorter" else 1)
                if day > first:
                    patch["recurrence"] = [f"{head};UNTIL={until_value(day, all_day=False)}"]
        self.google.execute(
            lambda s: s.events().patch(calendarId=calendar_id, eventId=master["id"], body=patch), "events.patch"
        )

    def change_series_in_advoware(self, termin: dict[str, Any], title: str, how: str) -> None:
        """The whole series changed in Advoware: one hour later, or a week shorter or longer."""
        body = {**termin, "text": title}
        if how == "later" and str(termin["uhrzeitBis"]) < "22:00:00":
            for key in ("datum", "datumBis"):
                body[key] = (datetime.fromisoformat(str(termin[key])) + timedelta(hours=1)).isoformat()
            for key in ("uhrzeitVon", "uhrzeitBis"):
                at = datetime.combine(date.today(), datetime.strptime(str(termin[key]), "%H:%M:%S").time())
                body[key] = (at + timedelta(hours=1)).strftime("%H:%M:%S")
        elif how in ("shorter", "longer"):
            until = datetime.fromisoformat(str(termin["datumBis"])) + timedelta(weeks=-1 if how == "shorter" else 1)
            if until.date() >= datetime.fromisoformat(str(termin["datum"])).date():
                body["datumBis"] = until.isoformat()
        self.advoware.update_termin(int(termin["frNr"]), body)
