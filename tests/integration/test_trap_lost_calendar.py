"""Trap: the synced calendar itself deleted in Google, unshared, or taken off the employee's
list.

What a user checks: a vanished calendar is never read as "every event deleted": nothing is deleted in
Advoware; a deleted calendar is made again (shared with the employee again) and refilled with the
same events; an employee who lost sight of it (sharing rule removed; delegated: calendar removed from
their list) gets it back, with its events; the administrator is told once per incident (one alert),
no mail reaches the employee, and the next run writes nothing. A quiet run inside the hour between two
access checks costs no extra request.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from include.calendar_engine.ids import event_id
from include.calendar_sync.context import SyncContext
from tests.calendar_helpers import calendar_events, calendar_ids, stats, termine, total_writes
from tests.trap_helpers import (
    EMAIL,
    EMPLOYEE,
    advoware_termin,
    days,
    delegated_ctx,
    mails,
    person,
    quiet,
    seed_employee,
    sync,
    trap_ctx,
)

pytestmark = pytest.mark.timeout(180)

TITLES = ("Gerichtstermin", "Mandantengespräch", "Akteneinsicht")


def _seed(advoware_url: str) -> None:
    first = datetime.combine(date.today() + days(3), time(9))
    seed_employee(
        advoware_url,
        [advoware_termin(t, first + days(i), first.replace(hour=10) + days(i)) for i, t in enumerate(TITLES)],
    )


def _started(c: SyncContext) -> tuple[SyncContext, list[Any]]:
    alerts: list[Any] = []
    c.notify = alerts.append  # what the DAG's tasks mail (include/airflow_provider/notifiers/alerts.py)
    assert sync(c)["status"] == "success"
    return c, alerts


@pytest.fixture
def shared(
    advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path
) -> Iterator[tuple[SyncContext, list[Any]]]:
    _seed(advoware_url)
    c = trap_ctx(advoware_url, google_url, redis_url, hub, tmp_path)
    yield _started(c)
    c.close()


@pytest.fixture
def delegated(
    advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path
) -> Iterator[tuple[SyncContext, list[Any]]]:
    _seed(advoware_url)
    c = delegated_ctx(advoware_url, google_url, redis_url, hub, tmp_path)
    yield _started(c)
    c.close()


def an_hour_later(hub: str) -> None:
    """The employee's access is checked at most hourly: let the hour pass."""
    with psycopg.connect(hub, autocommit=True) as conn:
        conn.execute("UPDATE employee_calendars SET access_checked_at = access_checked_at - interval '61 minutes'")


def _refilled(ctx: SyncContext, advoware_url: str, google_url: str, calendar_id: str) -> None:
    own = termine(advoware_url, EMPLOYEE)
    assert sorted(t["text"] for t in own) == sorted(TITLES)  # Advoware keeps everything
    events = calendar_events(google_url, calendar_id)
    assert sorted(e["id"] for e in events) == sorted(event_id(EMPLOYEE, t["frNr"]) for t in own)


@pytest.mark.parametrize("checked", [False, True], ids=["found_reading", "found_by_the_access_check"])
def test_a_deleted_calendar_is_made_again_and_refilled(
    shared: tuple[SyncContext, list[Any]], advoware_url: str, google_url: str, hub: str, checked: bool
) -> None:
    ctx, alerts = shared
    old = calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    session = ctx.google.session_for(EMAIL)  # the calendar's owner (the service account) deletes it
    session.execute(lambda s: s.calendars().delete(calendarId=old), "calendars.delete")
    if checked:
        an_hour_later(hub)
    advoware_writes = total_writes(advoware_url)

    result = sync(ctx)
    assert result["status"] == "success"
    new = calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    assert new != old
    _refilled(ctx, advoware_url, google_url, new)
    assert total_writes(advoware_url) == advoware_writes
    assert result["counts"]["plan"]["report_calendar_recreated"] == 1
    assert [a.kind for a in alerts] == ["calendar_recreated"] and EMPLOYEE in alerts[0].subject
    assert any(TITLES[0] in e["summary"] for e in person(ctx).events().list(calendarId=new).execute()["items"])
    assert mails(google_url) == 0  # shared again without a notification mail
    assert quiet(ctx, advoware_url, google_url) and len(alerts) == 1


def test_an_unshared_calendar_is_shared_again(
    shared: tuple[SyncContext, list[Any]], advoware_url: str, google_url: str, hub: str
) -> None:
    ctx, alerts = shared
    calendar_id = calendar_ids(hub)[EMPLOYEE]
    session = ctx.google.session_for(EMAIL)
    session.execute(lambda s: s.acl().delete(calendarId=calendar_id, ruleId=f"user:{EMAIL}"), "acl.delete")
    google = person(ctx)
    with pytest.raises(Exception, match="404"):
        google.events().list(calendarId=calendar_id).execute()  # the employee sees nothing

    acl_reads = stats(google_url)["requests"].get("acl.list", 0)
    assert quiet(ctx, advoware_url, google_url)  # inside the hour: not checked, no extra request
    assert stats(google_url)["requests"].get("acl.list", 0) == acl_reads and alerts == []

    an_hour_later(hub)
    result = sync(ctx)
    assert result["status"] == "success" and result["counts"]["plan"]["report_calendar_reshared"] == 1
    assert sorted(e["summary"] for e in google.events().list(calendarId=calendar_id).execute()["items"]) == sorted(
        TITLES
    )  # the same calendar, all its events, visible again
    _refilled(ctx, advoware_url, google_url, calendar_id)
    assert [a.kind for a in alerts] == ["calendar_reshared"] and mails(google_url) == 0
    an_hour_later(hub)
    assert quiet(ctx, advoware_url, google_url) and len(alerts) == 1  # checked again: fine, no second alert


def test_delegated_calendar_deleted_by_the_employee_is_made_again(
    delegated: tuple[SyncContext, list[Any]], advoware_url: str, google_url: str
) -> None:
    ctx, alerts = delegated
    old = calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    person(ctx).calendars().delete(calendarId=old).execute()  # their own calendar, deleted in Google
    result = sync(ctx)
    assert result["status"] == "success" and result["counts"]["plan"]["report_calendar_recreated"] == 1
    new = calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    assert new != old and new in {c["id"] for c in person(ctx).calendarList().list().execute()["items"]}
    _refilled(ctx, advoware_url, google_url, new)
    assert [a.kind for a in alerts] == ["calendar_recreated"]
    assert quiet(ctx, advoware_url, google_url)


def test_delegated_calendar_taken_off_the_list_is_put_back(
    delegated: tuple[SyncContext, list[Any]], advoware_url: str, google_url: str, hub: str
) -> None:
    ctx, alerts = delegated
    calendar_id = calendar_ids(hub)[EMPLOYEE]
    google = person(ctx)
    google.calendarList().delete(calendarId=calendar_id).execute()
    assert calendar_id not in {c["id"] for c in google.calendarList().list().execute()["items"]}
    an_hour_later(hub)
    result = sync(ctx)
    assert result["status"] == "success" and result["counts"]["plan"]["report_calendar_relisted"] == 1
    assert google.calendarList().get(calendarId=calendar_id).execute()["id"] == calendar_id
    assert calendar_ids(hub)[EMPLOYEE] == calendar_id  # the same calendar, not a new one
    _refilled(ctx, advoware_url, google_url, calendar_id)
    assert [a.kind for a in alerts] == ["calendar_relisted"]
    assert quiet(ctx, advoware_url, google_url)
