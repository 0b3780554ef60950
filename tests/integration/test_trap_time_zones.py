"""Trap: events made in Google in another time zone, with start and end in different zones, and the
nights daylight saving time changes.

What a user checks: Advoware shows each appointment at its Berlin wall time (computed here with
zoneinfo, independently of the sync), nothing flip-flops, and a later Advoware edit leaves the Google
event's instants and its zone as they were. A series that Google expands in another zone and whose
Berlin time moves with daylight saving cannot be held by Advoware: it is reported, never flattened.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from include.calendar_engine.ids import event_id
from include.calendar_sync.context import SyncContext
from tests.calendar_helpers import calendar_ids, termine
from tests.trap_helpers import EMPLOYEE, advoware_termin, person, quiet, seed_employee, sync, trap_ctx

pytestmark = pytest.mark.timeout(180)

BERLIN = ZoneInfo("Europe/Berlin")
ANCHOR = "Anker"  # Advoware never lists nothing


def last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def next_eu_change(month: int, after: date) -> date:
    """The next night Berlin changes the clock (3: summer time starts, 10: it ends)."""
    change = last_sunday(after.year, month)
    return change if change > after else last_sunday(after.year + 1, month)


def wall(dt: datetime) -> str:
    return dt.astimezone(BERLIN).strftime("%Y-%m-%dT%H:%M:%S")


def at(day: date, hour: int, minute: int, zone: str) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone))


def zoned(dt: datetime, zone: str) -> dict[str, str]:
    return {"dateTime": dt.astimezone(ZoneInfo(zone)).replace(tzinfo=None).isoformat(), "timeZone": zone}


@pytest.fixture
def ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> Iterator[SyncContext]:
    first = datetime.combine(date.today() + timedelta(days=3), datetime.min.time()).replace(hour=8)
    seed_employee(advoware_url, [advoware_termin(ANCHOR, first, first + timedelta(hours=1))])
    c = trap_ctx(advoware_url, google_url, redis_url, hub, tmp_path)
    assert sync(c)["status"] == "success"
    yield c
    c.close()


def by_text(advoware_url: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for t in termine(advoware_url, EMPLOYEE):
        assert t["text"] not in found, ("duplicate", t["text"])
        found[t["text"]] = t
    return found


def test_events_in_other_zones_land_at_their_berlin_time(ctx: SyncContext, advoware_url: str, google_url: str) -> None:
    google, calendar_id = person(ctx), calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    day = date.today() + timedelta(days=20)
    made = {
        "New York": (
            at(day, 10, 0, "America/New_York"),
            at(day, 11, 30, "America/New_York"),
            "America/New_York",
            "America/New_York",
        ),
        "Flug Tokio-London": (
            at(day, 9, 0, "Asia/Tokyo"),
            at(day, 16, 45, "Europe/London"),
            "Asia/Tokyo",
            "Europe/London",
        ),
    }
    ids = {}
    for title, (start, end, start_zone, end_zone) in made.items():
        ids[title] = (
            google.events()
            .insert(
                calendarId=calendar_id,
                body={"summary": title, "start": zoned(start, start_zone), "end": zoned(end, end_zone)},
            )
            .execute()["id"]
        )
    offset_only = at(day + timedelta(days=1), 7, 15, "America/Los_Angeles")
    google.events().insert(
        calendarId=calendar_id,
        body={  # an offset, no zone name
            "summary": "Los Angeles",
            "start": {"dateTime": offset_only.isoformat()},
            "end": {"dateTime": (offset_only + timedelta(minutes=45)).isoformat()},
        },
    ).execute()
    made["Los Angeles"] = (offset_only, offset_only + timedelta(minutes=45), "", "")

    assert sync(ctx)["status"] == "success"
    held = by_text(advoware_url)
    for title, (start, end, _, _) in made.items():
        assert (held[title]["datum"], held[title]["datumBis"]) == (wall(start), wall(end)), title
    assert quiet(ctx, advoware_url, google_url)

    # Advoware edits the New York meeting's title: Google keeps its instants and its zone
    t = held["New York"]
    ctx.advoware.update_termin(t["frNr"], {**t, "text": "New York (Mandant)"})
    assert sync(ctx)["status"] == "success"
    after = google.events().get(calendarId=calendar_id, eventId=ids["New York"]).execute()
    start, end = made["New York"][:2]
    assert after["summary"] == "New York (Mandant)"
    assert after["start"]["timeZone"] == after["end"]["timeZone"] == "America/New_York"
    assert datetime.fromisoformat(after["start"]["dateTime"]) == start
    assert datetime.fromisoformat(after["end"]["dateTime"]) == end
    assert quiet(ctx, advoware_url, google_url)


def test_the_nights_the_clocks_change(ctx: SyncContext, advoware_url: str, google_url: str) -> None:
    today = date.today()
    spring, autumn = next_eu_change(3, today), next_eu_change(10, today)
    local = lambda d, h, m=0: datetime(d.year, d.month, d.day, h, m)  # noqa: E731  (Advoware's wall time)
    for text, start, end in (
        ("Über die Umstellung", local(spring, 1, 30), local(spring, 3, 30)),
        ("In der Lücke", local(spring, 2, 30), local(spring, 4)),
        ("Lange Nacht", local(autumn, 0), local(autumn, 4)),
    ):
        ctx.advoware.create_termin(advoware_termin(text, start, end))
    # in Google, the second 02:30 of the autumn night (winter time, +01:00): Advoware has one 02:30 only
    second = datetime(autumn.year, autumn.month, autumn.day, 1, 30, tzinfo=UTC)
    google, calendar_id = person(ctx), calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    repeated = (
        google.events()
        .insert(
            calendarId=calendar_id,
            body={
                "summary": "Zweimal halb drei",
                "start": {"dateTime": second.isoformat()},
                "end": {"dateTime": (second + timedelta(minutes=30)).isoformat()},
            },
        )
        .execute()
    )

    assert sync(ctx)["status"] == "success"
    held = by_text(advoware_url)
    events = {e["summary"]: e for e in google.events().list(calendarId=calendar_id).execute()["items"]}

    def instants(title: str) -> tuple[datetime, datetime]:
        e = events[title]
        return datetime.fromisoformat(e["start"]["dateTime"]), datetime.fromisoformat(e["end"]["dateTime"])

    assert instants("Über die Umstellung") == (at(spring, 1, 30, "Europe/Berlin"), at(spring, 3, 30, "Europe/Berlin"))
    assert instants("Über die Umstellung")[1] - instants("Über die Umstellung")[0] == timedelta(hours=1)
    assert instants("In der Lücke")[0] == at(spring, 3, 30, "Europe/Berlin")  # 02:30 does not exist that night
    assert instants("Lange Nacht")[1] - instants("Lange Nacht")[0] == timedelta(hours=5)
    assert held["Zweimal halb drei"]["datum"] == f"{autumn}T02:30:00"
    assert quiet(ctx, advoware_url, google_url)

    t = held["Zweimal halb drei"]  # Advoware edits it: Google keeps the second 02:30
    ctx.advoware.update_termin(t["frNr"], {**t, "notiz": "Zeitumstellung beachten"})
    assert sync(ctx)["status"] == "success"
    after = google.events().get(calendarId=calendar_id, eventId=repeated["id"]).execute()
    assert after["description"] == "Zeitumstellung beachten"
    assert datetime.fromisoformat(after["start"]["dateTime"]) == second
    assert quiet(ctx, advoware_url, google_url)


def test_a_series_in_another_zone(ctx: SyncContext, advoware_url: str, google_url: str) -> None:
    google, calendar_id = person(ctx), calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    spring = next_eu_change(3, date.today() + timedelta(days=21))
    us_change = spring - timedelta(days=14)  # the US moves two weeks earlier: Berlin is an hour closer
    first = at(us_change - timedelta(days=14), 10, 0, "America/New_York")
    until = (spring + timedelta(days=14)).strftime("%Y%m%dT000000Z")
    moving = (
        google.events()
        .insert(
            calendarId=calendar_id,
            body={
                "summary": "Weekly New York",
                "start": zoned(first, "America/New_York"),
                "end": zoned(first + timedelta(hours=1), "America/New_York"),
                "recurrence": [f"RRULE:FREQ=WEEKLY;UNTIL={until}"],
            },
        )
        .execute()
    )
    paris = at(date.today() + timedelta(days=10), 9, 0, "Europe/Paris")
    google.events().insert(
        calendarId=calendar_id,
        body={
            "summary": "Daily Paris",
            "start": zoned(paris, "Europe/Paris"),
            "end": zoned(paris + timedelta(minutes=30), "Europe/Paris"),
            "recurrence": ["RRULE:FREQ=DAILY;INTERVAL=2"],
        },
    ).execute()

    result = sync(ctx)
    assert result["status"] == "success"
    held = by_text(advoware_url)
    assert "Weekly New York" not in held  # its Berlin time moves with the clocks: reported, not flattened
    assert result["counts"]["plan"]["report_unsupported_rule"] == 1
    series = held["Daily Paris"]
    assert (series["dauertermin"], series["turnus"], series["datum"]) == (1, 2, wall(paris))
    still = google.events().get(calendarId=calendar_id, eventId=moving["id"]).execute()
    assert still["recurrence"] == moving["recurrence"] and still["status"] == "confirmed"  # left alone
    assert quiet(ctx, advoware_url, google_url)
    assert event_id(EMPLOYEE, series["frNr"]) not in {
        e["id"] for e in google.events().list(calendarId=calendar_id).execute()["items"]
    }  # linked to the person's event, no second copy
