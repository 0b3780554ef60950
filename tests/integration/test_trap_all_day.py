"""Trap: all-day events: Google's exclusive end date on multi-day events, and all-day events at the
edges of the sync window.

What a user checks: a three-day absence made in Google is three days in Advoware (Advoware's last day
ends 23:59), and back; an all-day event on the window's first or last day is synced, one just outside
is not touched, one straddling an edge is synced whole; when the window moves on, nothing that merely
left it is deleted on either side.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from include.calendar_sync.calendars import window_of
from include.calendar_sync.context import SyncContext
from tests.calendar_helpers import calendar_events, calendar_ids, termine
from tests.trap_helpers import (
    EMPLOYEE,
    advoware_termin,
    all_day_termin,
    person,
    quiet,
    seed_employee,
    sync,
    trap_ctx,
)

pytestmark = pytest.mark.timeout(180)

TODAY = date.today()


def all_day(first: date, days: int) -> dict[str, dict[str, str]]:
    """Google's form: the end date is the day after the last day."""
    return {"start": {"date": first.isoformat()}, "end": {"date": (first + timedelta(days=days)).isoformat()}}


@pytest.fixture
def ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> Iterator[SyncContext]:
    anchor = datetime.combine(TODAY + timedelta(days=2), datetime.min.time()).replace(hour=9)
    seed_employee(advoware_url, [advoware_termin("Anker", anchor, anchor + timedelta(hours=1))])
    c = trap_ctx(advoware_url, google_url, redis_url, hub, tmp_path, today=TODAY)
    assert sync(c)["status"] == "success"
    yield c
    c.close()


def held(advoware_url: str) -> dict[str, tuple[str, str]]:
    return {t["text"]: (t["datum"], t["datumBis"]) for t in termine(advoware_url, EMPLOYEE) if t["abwesenheit"]}


def test_multi_day_all_day_events_from_google(ctx: SyncContext, advoware_url: str, google_url: str) -> None:
    google, calendar_id = person(ctx), calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    first = TODAY + timedelta(days=14)
    trip = google.events().insert(calendarId=calendar_id, body={"summary": "Urlaub", **all_day(first, 3)}).execute()
    google.events().insert(calendarId=calendar_id, body={"summary": "Fortbildung", **all_day(first, 1)}).execute()
    assert sync(ctx)["status"] == "success"
    assert held(advoware_url) == {
        "Urlaub": (f"{first}T00:00:00", f"{first + timedelta(days=2)}T23:59:00"),
        "Fortbildung": (f"{first}T00:00:00", f"{first}T23:59:00"),
    }
    assert quiet(ctx, advoware_url, google_url)

    (t,) = [t for t in termine(advoware_url, EMPLOYEE) if t["text"] == "Urlaub"]
    last = first + timedelta(days=4)  # Advoware makes it five days
    ctx.advoware.update_termin(t["frNr"], {**t, "datumBis": f"{last}T23:59:00", "uhrzeitBis": "23:59:00"})
    assert sync(ctx)["status"] == "success"
    after = google.events().get(calendarId=calendar_id, eventId=trip["id"]).execute()
    assert (after["start"], after["end"]) == (
        {"date": first.isoformat()},
        {"date": (first + timedelta(days=5)).isoformat()},
    )
    assert quiet(ctx, advoware_url, google_url)


def test_all_day_events_at_the_edges_of_the_window(ctx: SyncContext, advoware_url: str, google_url: str) -> None:
    window = window_of(ctx)
    google, calendar_id = person(ctx), calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    for text, first, last in (("A erster Tag", window.start, window.start), ("A letzter Tag", window.end, window.end)):
        ctx.advoware.create_termin(all_day_termin(text, first, last))
    for text, first, days in (
        ("G erster Tag", window.start, 1),
        ("G letzter Tag", window.end, 1),
        ("G über den Anfang", window.start - timedelta(days=2), 4),
        ("G endet davor", window.start - timedelta(days=3), 3),
        ("G danach", window.end + timedelta(days=1), 2),
    ):
        google.events().insert(calendarId=calendar_id, body={"summary": text, **all_day(first, days)}).execute()

    result = sync(ctx)
    assert result["status"] == "success" and result["counts"]["plan"]["report_left_window"] == 1
    day = lambda d, end=False: f"{d}T23:59:00" if end else f"{d}T00:00:00"  # noqa: E731
    assert held(advoware_url) == {
        "A erster Tag": (day(window.start), day(window.start, True)),
        "A letzter Tag": (day(window.end), day(window.end, True)),
        "G erster Tag": (day(window.start), day(window.start, True)),
        "G letzter Tag": (day(window.end), day(window.end, True)),
        "G über den Anfang": (day(window.start - timedelta(days=2)), day(window.start + timedelta(days=1), True)),
        # beyond the end: carried at once (the window reaches it later; an unchanged event is not listed again)
        "G danach": (day(window.end + timedelta(days=1)), day(window.end + timedelta(days=2), True)),
    }  # the one that ended before the window is left alone
    events = {e["summary"]: e for e in calendar_events(google_url, calendar_id)}
    assert {"A erster Tag", "A letzter Tag", "G endet davor", "G danach"} <= set(events)
    assert events["A letzter Tag"]["end"] == {"date": (window.end + timedelta(days=1)).isoformat()}
    assert quiet(ctx, advoware_url, google_url)
    held_before = held(advoware_url)

    ctx.today = TODAY + timedelta(days=3)  # three days later: the window has moved on
    assert quiet(ctx, advoware_url, google_url)  # nothing written: what merely left it is never deleted
    moved = held(advoware_url)
    assert moved == held_before  # what left the window is kept, nothing was added or changed
    assert {"A erster Tag", "G erster Tag", "G über den Anfang", "G endet davor"} <= {
        e["summary"] for e in calendar_events(google_url, calendar_id)
    }
