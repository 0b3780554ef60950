"""Google Calendar client against the Google sandbox, with the real hub (PostgreSQL) and Redis.

Each test checks what a user of the sync would check: the calendars, ACL rules and events the
sandbox holds afterwards, the hub rows, and the sandbox's request counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from include.calendar_engine.ids import event_id
from include.calendar_engine.marker import with_advoware_properties
from include.calendar_sync.calendars import provision as provision_calendar
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.credentials import ServiceAccount
from include.google_calendar.errors import EtagConflict, QuotaExceeded
from include.google_calendar.provisioning import calendar_summary
from include.google_calendar.ratelimit import Backoff, RateLimiter
from include.google_calendar.reading import read_changes
from include.google_calendar.writing import EventWriter, WriteOp
from include.hub import calendars as hub_calendars
from include.hub.db import Hub, connect
from include.settings import GoogleSettings
from sandbox.keys import write_service_account_file

SA_EMAIL = "sync@kanzlei-sandbox.iam.gserviceaccount.com"
EMAIL = "ab@kanzlei.example"
WINDOW = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))

MakeClient = Callable[..., GoogleCalendarClient]


# -- helpers -----------------------------------------------------------------------------------
def admin(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    if body is None:
        r = httpx.get(f"{url}{path}", timeout=30)
    else:
        r = httpx.post(f"{url}{path}", json=body, timeout=30)
    r.raise_for_status()
    return r.json()


def stats(url: str) -> dict[str, Any]:
    return admin(url, "/_sandbox/stats")


def calendars_named(url: str, summary: str) -> list[dict[str, Any]]:
    return [c for c in admin(url, "/_sandbox/state")["calendars"] if c["summary"] == summary]


def events_of(url: str, calendar_id: str) -> list[dict[str, Any]]:
    cal = next(c for c in admin(url, "/_sandbox/state")["calendars"] if c["id"] == calendar_id)
    return cal["events"]


def appointment(frnr: int, *, employee: str = "AB", day: int = 0, title: str | None = None) -> dict[str, Any]:
    start = datetime(2025, 3, 3, 9, 0) + timedelta(days=day % 300, minutes=15 * (frnr % 20))
    end = start + timedelta(minutes=30)
    body = {
        "summary": title or f"Termin {frnr}",
        "start": {"dateTime": start.isoformat(), "timeZone": "Europe/Berlin"},
        "end": {"dateTime": end.isoformat(), "timeZone": "Europe/Berlin"},
    }
    return with_advoware_properties(body, employee, frnr)


def insert_op(frnr: int, employee: str = "AB") -> WriteOp:
    return WriteOp.insert(event_id(employee, frnr), appointment(frnr, employee=employee, day=frnr), ref=frnr)


def add_links(dsn: str, employee: str, frnrs: list[int], *, google_only: int = 0) -> None:
    with connect(dsn) as conn:
        for frnr in frnrs:
            conn.execute(
                "INSERT INTO calendar_links (employee, frnr, google_event_id, google_etag, status) "
                "VALUES (%s, %s, %s, 'etag', 'linked')",
                (employee, frnr, event_id(employee, frnr)),
            )
        for i in range(google_only):
            conn.execute(
                "INSERT INTO calendar_links (employee, google_event_id, status) VALUES (%s, %s, 'linked')",
                (employee, f"googleonly{i:05d}"),
            )


def links(dsn: str, employee: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT frnr, google_event_id, google_etag, status FROM calendar_links WHERE employee = %s ORDER BY id",
            (employee,),
        ).fetchall()


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture
def key_file(google_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "sa.json"
    write_service_account_file(path, f"{google_url}/token", client_email=SA_EMAIL)
    return path


@pytest.fixture
def make_client(google_url: str, redis_url: str, key_file: Path) -> MakeClient:
    def make(
        *, delegation: bool = False, limit: int = 600, window_s: float = 60.0, backoff: Backoff | None = None
    ) -> GoogleCalendarClient:
        settings = GoogleSettings(
            _env_file=None,
            calendar_service_account_path=str(key_file),
            delegation=delegation,
            api_endpoint=f"{google_url}/calendar/v3/",
            batch_uri=f"{google_url}/batch/calendar/v3",
            token_uri=f"{google_url}/token",
            requests_per_window=limit,
            window_s=window_s,
        )
        limiter = RateLimiter.from_url(redis_url, limit=limit, window_s=window_s)
        return GoogleCalendarClient(
            settings,
            ServiceAccount.from_settings(settings),
            limiter=limiter,
            backoff=backoff or Backoff(base_s=0.1, cap_s=2.0, max_retries=8),
            timeout_s=10,
        )

    return make


def provision(client: GoogleCalendarClient, hub: str, employee: str = "AB", email: str = EMAIL):
    with Hub(hub) as unit:
        return provision_calendar(client, unit, employee, email)


def token_of(hub: str, employee: str = "AB") -> str | None:
    with connect(hub) as conn:
        return hub_calendars.get(conn, employee).sync_token  # type: ignore[union-attr]


def save_token(hub: str, token: str | None, *, full: bool, employee: str = "AB") -> None:
    """What the sync does once the changes are handled (finalize): the next read starts after them."""
    with connect(hub) as conn:
        hub_calendars.save_sync_token(conn, employee, token, full_sync=full)


# -- provisioning ------------------------------------------------------------------------------
def test_shared_provisioning_twice_makes_one_calendar_and_one_acl_rule(
    make_client: MakeClient, google_url: str, hub: str
) -> None:
    client = make_client(delegation=False)
    first = provision(client, hub)
    second = provision(client, hub)

    assert first.created and not second.created and not second.recreated
    assert first.calendar_id == second.calendar_id
    cals = calendars_named(google_url, calendar_summary("AB"))
    assert len(cals) == 1
    assert cals[0]["owner"] == SA_EMAIL and cals[0]["timeZone"] == "Europe/Berlin"
    rules = [r for r in cals[0]["acl"] if r["scope"].get("value") == EMAIL]
    assert len(rules) == 1 and rules[0]["role"] == "writer" and rules[0]["id"] == first.acl_rule_id
    s = stats(google_url)
    assert s["writes"].get("calendars.insert") == 1 and s["writes"].get("acl.insert") == 1
    assert set(s["by_principal"]) - {"anonymous"} == {SA_EMAIL}  # one quota user: the SA
    with connect(hub) as conn:
        row = hub_calendars.get(conn, "AB")
    assert row is not None and row.calendar_id == first.calendar_id and row.mode == "shared"


def test_delegated_provisioning_twice_uses_the_employees_account_without_acl(
    make_client: MakeClient, google_url: str, hub: str
) -> None:
    client = make_client(delegation=True)
    first = provision(client, hub)
    second = provision(client, hub, "CD", "cd@kanzlei.example")
    again = provision(client, hub)

    assert first.created and second.created and not again.created
    assert again.calendar_id == first.calendar_id and first.acl_rule_id is None
    (cal,) = calendars_named(google_url, calendar_summary("AB"))
    assert cal["owner"] == EMAIL
    assert [r["scope"]["value"] for r in cal["acl"]] == [EMAIL]  # only the owner's own rule
    s = stats(google_url)
    assert s["writes"].get("calendars.insert") == 2 and "acl.insert" not in s["writes"]
    assert {EMAIL, "cd@kanzlei.example"} <= set(s["by_principal"])
    assert SA_EMAIL not in s["by_principal"]  # every call ran as an employee
    with connect(hub) as conn:
        assert hub_calendars.get(conn, "AB").mode == "delegated"  # type: ignore[union-attr]


def test_calendar_deleted_by_hand_is_recreated_and_links_reset(
    make_client: MakeClient, google_url: str, hub: str
) -> None:
    client = make_client()
    first = provision(client, hub)
    add_links(hub, "AB", [1, 2, 3], google_only=1)
    add_links(hub, "CD", [1])  # another employee: untouched
    with connect(hub) as conn:
        hub_calendars.save_sync_token(conn, "AB", "tok", full_sync=True)
    session = client.session_for(EMAIL)
    session.execute(lambda s: s.calendars().delete(calendarId=first.calendar_id), "calendars.delete")

    again = provision(client, hub)

    assert again.recreated and again.created and again.calendar_id != first.calendar_id
    assert len(calendars_named(google_url, calendar_summary("AB"))) == 1
    assert links(hub, "AB") == [(1, None, None, "pending"), (2, None, None, "pending"), (3, None, None, "pending")]
    assert links(hub, "CD")[0][1] == event_id("CD", 1)
    with connect(hub) as conn:
        row = hub_calendars.get(conn, "AB")
    assert row is not None and row.calendar_id == again.calendar_id and row.sync_token is None
    assert provision(client, hub).created is False  # and stable again


# -- reading -----------------------------------------------------------------------------------
def test_full_then_incremental_listing_pages_through_everything(
    make_client: MakeClient, google_url: str, hub: str
) -> None:
    client = make_client()
    cal_id = provision(client, hub).calendar_id
    seeded = [appointment(n, day=n) | {"id": event_id("AB", n)} for n in range(2600)]
    assert admin(google_url, "/_sandbox/seed", {"events": {cal_id: seeded}})["events"] == 2600
    session = client.session_for(EMAIL)

    full = read_changes(session, cal_id, token_of(hub), *WINDOW)
    assert full.kind == "full" and full.reason == "no_token" and full.pages == 2  # 2500 + 100
    assert len({e["id"] for e in full.items}) == 2600 and full.next_sync_token
    save_token(hub, full.next_sync_token, full=True)

    writer = EventWriter(client.session_for(EMAIL), cal_id)
    writer.patch(event_id("AB", 5), {"summary": "verlegt"})
    writer.delete(event_id("AB", 6))
    writer.insert(event_id("AB", 9000), appointment(9000))
    changes = read_changes(session, cal_id, token_of(hub), *WINDOW, page_size=2)  # incremental paging too
    assert changes.kind == "incremental" and changes.pages == 2
    by_id = {e["id"]: e for e in changes.items}
    assert set(by_id) == {event_id("AB", n) for n in (5, 6, 9000)}
    assert by_id[event_id("AB", 6)]["status"] == "cancelled"
    assert by_id[event_id("AB", 5)]["summary"] == "verlegt"

    # The token not saved yet: the same changes come again (nothing lost if the handling crashed).
    assert {e["id"] for e in read_changes(session, cal_id, token_of(hub), *WINDOW).items} == set(by_id)
    save_token(hub, changes.next_sync_token, full=False)
    quiet = read_changes(session, cal_id, token_of(hub), *WINDOW, page_size=2)
    assert quiet.kind == "incremental" and quiet.items == []


def test_expired_sync_token_falls_back_to_full_listing_and_keeps_links(
    make_client: MakeClient, google_url: str, hub: str
) -> None:
    client = make_client()
    cal_id = provision(client, hub).calendar_id
    writer = EventWriter(client.session_for(EMAIL), cal_id)
    results = writer.write_many([insert_op(n) for n in range(1, 6)])
    assert [r.outcome for r in results] == ["created"] * 5
    add_links(hub, "AB", [1, 2, 3, 4, 5])
    session = client.session_for(EMAIL)
    save_token(hub, read_changes(session, cal_id, None, *WINDOW).next_sync_token, full=True)
    before = links(hub, "AB")
    inserts = stats(google_url)["requests"]["events.insert"]

    admin(google_url, "/_sandbox/invalidate_sync_tokens", {})
    recovered = read_changes(session, cal_id, token_of(hub), *WINDOW)

    assert recovered.kind == "full" and recovered.reason == "full_sync_required"
    assert {e["id"] for e in recovered.items} == {event_id("AB", n) for n in range(1, 6)}
    assert links(hub, "AB") == before  # links kept
    assert stats(google_url)["requests"]["events.insert"] == inserts  # nothing re-created
    save_token(hub, recovered.next_sync_token, full=True)
    assert read_changes(session, cal_id, token_of(hub), *WINDOW).kind == "incremental"


# -- writing -----------------------------------------------------------------------------------
def test_insert_whose_answer_was_lost_is_adopted_not_duplicated(
    google_url: str, redis_url: str, key_file: Path, hub: str
) -> None:
    # The server stalls 1 s before storing; the client gives up after 0.4 s and retries only after
    # the event was stored (backoff >= 1 s): the retry meets 409 duplicate and adopts the event.
    settings = GoogleSettings(
        _env_file=None,
        calendar_service_account_path=str(key_file),
        api_endpoint=f"{google_url}/calendar/v3/",
        batch_uri=f"{google_url}/batch/calendar/v3",
        token_uri=f"{google_url}/token",
    )
    client = GoogleCalendarClient(
        settings,
        ServiceAccount.from_settings(settings),
        limiter=RateLimiter.from_url(redis_url, limit=600, window_s=60),
        backoff=Backoff(base_s=2.0, cap_s=4.0, max_retries=3),
        timeout_s=0.4,
    )
    cal_id = provision(client, hub).calendar_id
    writer = EventWriter(client.session_for(EMAIL), cal_id)
    admin(
        google_url,
        "/_sandbox/faults",
        {"faults": [{"match": "events.insert", "kind": "timeout", "delay_s": 1.0, "count": 1}]},
    )

    result = writer.insert(event_id("AB", 42), appointment(42))

    assert result.outcome == "adopted" and result.event is not None
    assert result.event["id"] == event_id("AB", 42)
    stored = events_of(google_url, cal_id)
    assert [e["id"] for e in stored] == [event_id("AB", 42)]
    assert stored[0]["extendedProperties"]["private"]["advowareFrNr"] == "42"
    assert stats(google_url)["requests"]["events.insert"] == 2  # the lost one and the retry


def test_insert_cut_off_mid_answer_leaves_exactly_one_event(make_client: MakeClient, google_url: str, hub: str) -> None:
    client = make_client()
    cal_id = provision(client, hub).calendar_id
    writer = EventWriter(client.session_for(EMAIL), cal_id)
    admin(google_url, "/_sandbox/faults", {"faults": [{"match": "events.insert", "kind": "drop", "count": 1}]})

    result = writer.insert(event_id("AB", 43), appointment(43))

    # Whether the sandbox stored before cutting the answer decides created vs adopted.
    assert result.outcome in ("created", "adopted")
    assert [e["id"] for e in events_of(google_url, cal_id)] == [event_id("AB", 43)]
    assert stats(google_url)["requests"]["events.insert"] == 2


def test_cancelled_event_is_undeleted_only_when_asked(make_client: MakeClient, google_url: str, hub: str) -> None:
    client = make_client()
    cal_id = provision(client, hub).calendar_id
    writer = EventWriter(client.session_for(EMAIL), cal_id)
    eid = event_id("AB", 7)
    writer.insert(eid, appointment(7))
    writer.delete(eid)  # deleted in Google by the user

    kept = writer.insert(eid, appointment(7))
    assert kept.outcome == "deleted_in_google"
    assert writer.get(eid)["status"] == "cancelled"  # type: ignore[index]
    restored = writer.insert(eid, appointment(7), undelete=True)
    assert restored.outcome == "undeleted" and restored.event["status"] == "confirmed"  # type: ignore[index]


def test_patch_with_stale_etag_reports_a_conflict_with_the_current_event(make_client: MakeClient, hub: str) -> None:
    client = make_client()
    cal_id = provision(client, hub).calendar_id
    writer = EventWriter(client.session_for(EMAIL), cal_id)
    eid = event_id("AB", 1)
    created = writer.insert(eid, appointment(1)).event
    assert created is not None
    newer = writer.patch(eid, {"summary": "von Hand geändert"}, etag=created["etag"]).event
    assert newer is not None and newer["etag"] != created["etag"]

    with pytest.raises(EtagConflict) as info:
        writer.patch(eid, {"summary": "aus Advoware"}, etag=created["etag"])

    assert info.value.current is not None
    assert info.value.current["etag"] == newer["etag"]
    assert info.value.current["summary"] == "von Hand geändert"  # the stale write did not land
    conflict = writer.apply(WriteOp.delete(eid, etag=created["etag"]))
    assert conflict.outcome == "conflict" and writer.get(eid)["status"] == "confirmed"  # type: ignore[index]


def test_delete_twice_is_done_twice(make_client: MakeClient, google_url: str, hub: str) -> None:
    client = make_client()
    cal_id = provision(client, hub).calendar_id
    writer = EventWriter(client.session_for(EMAIL), cal_id)
    eid = event_id("AB", 3)
    writer.insert(eid, appointment(3))

    assert writer.delete(eid).outcome == "deleted"
    assert writer.delete(eid).outcome == "already_deleted"  # 410 deleted
    assert writer.delete(event_id("AB", 404)).outcome == "already_deleted"  # 404: never existed
    assert stats(google_url)["requests"]["events.delete"] == 3


def test_batch_retries_only_its_failed_parts(make_client: MakeClient, google_url: str, hub: str) -> None:
    client = make_client()
    cal_id = provision(client, hub).calendar_id
    writer = EventWriter(client.session_for(EMAIL), cal_id)
    writer.insert(event_id("AB", 10), appointment(10))  # already there: its part answers 409
    admin(
        google_url,
        "/_sandbox/faults",
        {
            "faults": [
                {"match": "events.insert", "kind": "status", "status": 503, "count": 3},
                {"match": "events.insert", "kind": "status", "status": 403, "reason": "rateLimitExceeded", "count": 2},
            ]
        },
    )
    before = stats(google_url)["requests"]["events.insert"]

    results = writer.write_many([insert_op(n) for n in range(120)])

    assert [r.op.ref for r in results] == list(range(120))
    assert sum(r.outcome == "created" for r in results) == 119
    assert [r.op.ref for r in results if r.outcome == "adopted"] == [10]
    ids = [e["id"] for e in events_of(google_url, cal_id)]
    assert sorted(ids) == sorted(event_id("AB", n) for n in range(120))  # all there, none twice
    s = stats(google_url)
    # 120 parts + the 5 refused parts sent again one by one (a whole batch resent would be +50).
    assert s["requests"]["events.insert"] - before == 125
    assert client.retries == 5


def test_quota_pressure_is_answered_by_backoff(make_client: MakeClient, google_url: str, hub: str) -> None:
    client = make_client(backoff=Backoff(base_s=0.25, cap_s=3.0, max_retries=10))
    cal_id = provision(client, hub).calendar_id
    admin(google_url, "/_sandbox/config", {"quota_requests": 30, "quota_window_s": 3, "quota_status": 429})
    writer = EventWriter(client.session_for(EMAIL), cal_id)

    results = writer.write_many([insert_op(n) for n in range(100)])

    assert [r.outcome for r in results] == ["created"] * 100
    ids = [e["id"] for e in events_of(google_url, cal_id)]
    assert sorted(ids) == sorted(event_id("AB", n) for n in range(100))  # none duplicated
    assert client.retries > 0  # the sandbox did push back


def test_quota_exceeded_stops_cleanly_without_retrying(make_client: MakeClient, google_url: str, hub: str) -> None:
    client = make_client()
    cal_id = provision(client, hub).calendar_id
    writer = EventWriter(client.session_for(EMAIL), cal_id)
    admin(
        google_url,
        "/_sandbox/faults",
        {
            "faults": [
                {"match": "events.insert", "kind": "status", "status": 403, "reason": "quotaExceeded", "count": 1}
            ]
        },
    )

    with pytest.raises(QuotaExceeded) as info:
        writer.insert(event_id("AB", 1), appointment(1))
    assert SA_EMAIL in str(info.value) and "usage limits" in str(info.value)
    assert stats(google_url)["requests"]["events.insert"] == 1  # one attempt, no hammering

    admin(
        google_url,
        "/_sandbox/faults",
        {
            "faults": [
                {"match": "events.insert", "kind": "status", "status": 403, "reason": "quotaExceeded", "count": 1}
            ]
        },
    )
    with pytest.raises(QuotaExceeded) as batch_info:
        writer.write_many([insert_op(n) for n in range(2, 120)])
    # The first batch ran (49 written, one refused); no further batch was sent.
    assert stats(google_url)["requests"]["events.insert"] == 1 + 50
    assert len(batch_info.value.results) == 49
    assert len(events_of(google_url, cal_id)) == 49


def test_limiter_matched_to_the_quota_lets_parallel_batches_through_unrefused(
    make_client: MakeClient, google_url: str, hub: str
) -> None:
    client = make_client(limit=30, window_s=2.0)
    cal_id = provision(client, hub).calendar_id
    admin(google_url, "/_sandbox/config", {"quota_requests": 30, "quota_window_s": 2, "quota_status": 429})
    admin(google_url, "/_sandbox/faults", {"latency_ms": 5})
    session = client.session_for(EMAIL)
    writer = EventWriter(session, cal_id)
    time.sleep(2.0)  # provisioning's calls leave the window

    start = time.monotonic()
    results = writer.write_many([insert_op(n) for n in range(75)], parallel=3)
    elapsed = time.monotonic() - start

    assert [r.outcome for r in results] == ["created"] * 75
    assert client.retries == 0 and stats(google_url)["requests"]["events.insert"] == 75  # none refused
    assert elapsed >= 4.0  # 75 calls at 30 per 2 s need three windows: the quota was binding
    assert len(events_of(google_url, cal_id)) == 75
