"""Helpers of the series-exception scenarios: an employee with a weekly series on the sandboxes, a
person editing single occurrences in Google through the real client, and what a user would look at
(the series in Advoware, the instances Google shows, the run's reports, the writes)."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from include.calendar_engine.timeutil import BERLIN
from include.calendar_sync.context import SyncContext
from include.calendar_sync.prepare import RunParams
from include.calendar_sync.runner import sync_all
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import ServiceAccount
from include.google_calendar.ratelimit import Backoff
from include.google_calendar.service import CalendarSession
from tests.calendar_helpers import calendar_ids, make_ctx, stats

EMP = "AB"


def start_day(today: date) -> date:
    """The first occurrence: the Tuesday after next (always inside the window)."""
    return today + timedelta(days=(1 - today.weekday()) % 7 + 7)


def weekly_termin(
    today: date, *, frnr: int | None = None, weeks: int = 8, hour: int = 9, text: str = "Jour fixe"
) -> dict[str, Any]:
    first = start_day(today)
    until = first + timedelta(weeks=weeks - 1)
    body = {
        "text": text,
        "notiz": "",
        "ort": "Saal 3",
        "kuerzel": EMP,
        "anwalt": EMP,
        "datum": f"{first}T{hour:02d}:00:00",
        "uhrzeitVon": f"{hour:02d}:00:00",
        "datumBis": f"{until}T{hour + 1:02d}:00:00",
        "uhrzeitBis": f"{hour + 1:02d}:00:00",
        "abwesenheit": 0,
        "privat": 0,
        "dauertermin": 1,
        "turnus": 1,
        "turnusArt": 2,
    }
    if frnr is not None:
        body["frNr"] = frnr
    return body


def seed(advoware_url: str, *termine: dict[str, Any]) -> None:
    body = {
        "mitarbeiter": [{"kuerzel": EMP, "vorname": "A", "name": "B", "email": "ab@kanzlei.example", "aktiv": True}],
        "termine": list(termine),
    }
    httpx.post(f"{advoware_url}/_sandbox/seed", json=body, timeout=10).raise_for_status()


class Person:
    """The employee at Google Calendar (the calendar's owner principal, the real client)."""

    def __init__(self, ctx: SyncContext, hub: str) -> None:
        s = ctx.settings
        self.session: CalendarSession = GoogleCalendarClient(
            s.google,
            ServiceAccount.from_settings(s.google),
            limiter=None,
            backoff=Backoff(base_s=0.01, cap_s=0.05, max_retries=2),
        ).session_for(None)
        self.hub = hub

    @property
    def calendar(self) -> str:
        return calendar_ids(self.hub)[EMP]

    def call(self, fn: Any, op: str) -> Any:
        return self.session.execute(fn, op)

    def events(self) -> list[dict[str, Any]]:
        """What the calendar holds (singleEvents=false: series, exceptions, single events)."""
        page = self.call(
            lambda s: s.events().list(calendarId=self.calendar, maxResults=2500, timeZone="Europe/Berlin"),
            "events.list",
        )
        return [e for e in page["items"] if e.get("status") != "cancelled"]

    def master(self, text_prefix: str = "") -> dict[str, Any]:
        (found,) = [e for e in self.events() if e.get("recurrence") and e.get("summary", "").startswith(text_prefix)]
        return found

    def instances(self, master_id: str) -> list[dict[str, Any]]:
        page = self.call(
            lambda s: s.events().instances(
                calendarId=self.calendar, eventId=master_id, maxResults=2500, timeZone="Europe/Berlin"
            ),
            "events.instances",
        )
        return list(page["items"])

    def shown(self) -> list[tuple[str, str]]:
        """Every instance Google shows (singleEvents=true): (start, title), in order."""
        page = self.call(
            lambda s: s.events().list(
                calendarId=self.calendar,
                singleEvents=True,
                orderBy="startTime",
                maxResults=2500,
                timeZone="Europe/Berlin",
            ),
            "events.list",
        )
        return [(e["start"].get("dateTime") or e["start"]["date"], e.get("summary", "")) for e in page["items"]]

    def move(self, instance: dict[str, Any], *, days: int = 0, hours: int = 0) -> dict[str, Any]:
        body = {}
        for key in ("start", "end"):
            at = datetime.fromisoformat(instance[key]["dateTime"]) + timedelta(days=days, hours=hours)
            body[key] = {"dateTime": at.isoformat(), "timeZone": "Europe/Berlin"}
        return self.call(
            lambda s: s.events().patch(calendarId=self.calendar, eventId=instance["id"], body=body), "events.patch"
        )

    def retitle(self, instance: dict[str, Any], title: str) -> dict[str, Any]:
        return self.call(
            lambda s: s.events().patch(calendarId=self.calendar, eventId=instance["id"], body={"summary": title}),
            "events.patch",
        )

    def cancel(self, instance: dict[str, Any]) -> None:
        self.call(lambda s: s.events().delete(calendarId=self.calendar, eventId=instance["id"]), "events.delete")

    def insert(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.call(lambda s: s.events().insert(calendarId=self.calendar, body=body), "events.insert")

    def patch(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.call(
            lambda s: s.events().patch(calendarId=self.calendar, eventId=event_id, body=body), "events.patch"
        )


def ctx_for(
    advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path, *, write_protection: bool = False
) -> SyncContext:
    return make_ctx(
        advoware_url, google_url, redis_url, hub, tmp_path, write_protection=write_protection, google_retries=2
    )


def timing_model(google_url: str, model: str) -> None:
    httpx.post(f"{google_url}/_sandbox/config", json={"series_timing_model": model}, timeout=10).raise_for_status()


def writes(advoware_url: str, google_url: str) -> tuple[int, int]:
    return int(stats(advoware_url)["total_writes"]), int(stats(google_url)["total_writes"])


def run(ctx: SyncContext, params: RunParams | None = None) -> tuple[str, list[tuple[str, int | None, str | None]]]:
    """A clean run of every employee; returns (run id, the run's reports as (kind, frNr, event id))."""
    run_id, results = sync_all(ctx, params)
    assert {r["status"] for r in results.values()} == {"success"}, results
    return run_id, reports(ctx.hub.dsn, run_id)


def reports(hub: str, run_id: str) -> list[tuple[str, int | None, str | None]]:
    with psycopg.connect(hub) as conn:
        rows = conn.execute("SELECT plan FROM sync_plans WHERE run_id = %s", (run_id,)).fetchall()
    out = []
    for (plan,) in rows:
        data = plan if isinstance(plan, dict) else json.loads(plan)
        out += [(r["kind"], r["frnr"], r["google_event_id"]) for r in data["reports"]]
    return sorted(out, key=str)


def exception_rows(hub: str) -> dict[str, tuple[str, str]]:
    """instance id → (kind, status) of the hub's series_exceptions."""
    with psycopg.connect(hub) as conn:
        rows = conn.execute("SELECT instance_id, kind, status FROM series_exceptions").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def at(day: date, hour: int) -> str:
    return datetime.combine(day, time(hour)).replace(tzinfo=BERLIN).isoformat()
