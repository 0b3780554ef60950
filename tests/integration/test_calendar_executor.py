"""The calendar executor against the Advoware and Google sandboxes with the real hub and Redis.

Crashes are simulated where a real one would hit: a `BaseException` (as a killed process would)
raised around the Advoware POST; the next run must neither duplicate nor lose the appointment.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.calendar_engine.marker import marker_of
from include.calendar_sync.context import PhaseFailed, SyncContext
from include.calendar_sync.executor import run_phase
from include.calendar_sync.prepare import RunParams, prepare
from include.calendar_sync.report import table
from include.calendar_sync.runner import new_run_id, sync_all
from include.hub import intents as hub_intents
from include.hub.db import connect
from tests.calendar_helpers import (
    calendar_events,
    calendar_ids,
    links,
    make_ctx,
    seed_firm,
    termine,
    total_writes,
)

pytestmark = pytest.mark.timeout(120)


class Crash(BaseException):
    """Stands for the process being killed: not an Exception, so nothing catches it."""


@pytest.fixture
def ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> SyncContext:
    seed_firm(advoware_url)
    c = make_ctx(advoware_url, google_url, redis_url, hub, tmp_path)
    yield c
    c.close()


def _user_event(ctx: SyncContext, employee: str, title: str) -> str:
    """An appointment a person enters in Google (no marker, server-made id), in ten days."""
    day = (date.today() + timedelta(days=10)).isoformat()
    session, calendar_id = ctx.calendar(employee)
    body = {
        "summary": title,
        "start": {"dateTime": f"{day}T10:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"{day}T11:00:00+02:00", "timeZone": "Europe/Berlin"},
    }
    created = session.execute(lambda s: s.events().insert(calendarId=calendar_id, body=body), "events.insert")
    return str(created["id"])


def _first_employee(ctx: SyncContext) -> str:
    return sorted(calendar_ids(ctx.hub_dsn))[0]


def test_full_sync_creates_everything_and_a_second_run_writes_nothing(
    ctx: SyncContext, advoware_url: str, google_url: str, hub: str
) -> None:
    run_id, results = sync_all(ctx)
    assert {r["status"] for r in results.values()} == {"success"}, results
    cals = calendar_ids(hub)
    assert set(cals) == set(results) and len(cals) == 3
    for employee, calendar_id in cals.items():
        own = {t["frNr"] for t in termine(advoware_url, employee)}
        events = calendar_events(google_url, calendar_id)
        assert sorted(marker_of(e)[1] for e in events) == sorted(own)  # each once, none missing
    text = table(hub, run_id)
    assert "G+" in text and text.count("success") == 3

    before = (total_writes(advoware_url), total_writes(google_url))
    _, again = sync_all(ctx)
    assert {r["status"] for r in again.values()} == {"success"}
    assert (total_writes(advoware_url), total_writes(google_url)) == before


def test_crash_between_intent_and_post_creates_exactly_once(
    ctx: SyncContext, advoware_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_all(ctx)
    employee = _first_employee(ctx)
    gid = _user_event(ctx, employee, "Neuer Termin aus Google")
    real_create = ctx.advoware.create_termin

    def crash_before_post(*_a: Any, **_kw: Any) -> dict[str, Any]:
        raise Crash()

    monkeypatch.setattr(ctx.advoware, "create_termin", crash_before_post)
    prep = prepare(ctx, new_run_id(), employee, RunParams())
    run_phase(ctx, prep["plan_id"], 1)
    with pytest.raises(Crash):
        run_phase(ctx, prep["plan_id"], 2)
    with connect(ctx.hub_dsn) as conn:
        (intent,) = hub_intents.pending_intents(conn, employee)
    assert intent.google_event_id == gid and intent.frnr is None
    assert [t for t in termine(advoware_url, employee) if t["text"] == "Neuer Termin aus Google"] == []

    monkeypatch.setattr(ctx.advoware, "create_termin", real_create)
    _, results = sync_all(ctx, employees=[employee])
    assert results[employee]["status"] == "success"
    created = [t for t in termine(advoware_url, employee) if t["text"] == "Neuer Termin aus Google"]
    assert len(created) == 1
    (link,) = [lk for lk in links(ctx.hub_dsn, employee) if lk["google_event_id"] == gid]
    assert link["frnr"] == created[0]["frNr"] and link["status"] == "linked"
    with connect(ctx.hub_dsn) as conn:
        assert hub_intents.pending_intents(conn, employee) == []


def test_crash_after_post_before_link_adopts_instead_of_duplicating(
    ctx: SyncContext, advoware_url: str, google_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_all(ctx)
    employee = _first_employee(ctx)
    gid = _user_event(ctx, employee, "Termin kurz vor dem Absturz")
    real_create = ctx.advoware.create_termin

    def post_then_crash(*a: Any, **kw: Any) -> dict[str, Any]:
        real_create(*a, **kw)
        raise Crash()

    monkeypatch.setattr(ctx.advoware, "create_termin", post_then_crash)
    prep = prepare(ctx, new_run_id(), employee, RunParams())
    with pytest.raises(Crash):
        run_phase(ctx, prep["plan_id"], 2)
    made = [t for t in termine(advoware_url, employee) if t["text"] == "Termin kurz vor dem Absturz"]
    assert len(made) == 1  # the POST went through, the hub never heard of it
    assert not [lk for lk in links(ctx.hub_dsn, employee) if lk["google_event_id"] == gid and lk["frnr"]]

    monkeypatch.setattr(ctx.advoware, "create_termin", real_create)
    writes = total_writes(advoware_url)
    _, results = sync_all(ctx, employees=[employee])
    assert results[employee]["status"] == "success"
    after = [t for t in termine(advoware_url, employee) if t["text"] == "Termin kurz vor dem Absturz"]
    assert [t["frNr"] for t in after] == [made[0]["frNr"]]  # adopted, not created again
    assert total_writes(advoware_url) == writes
    (link,) = [lk for lk in links(ctx.hub_dsn, employee) if lk["google_event_id"] == gid]
    assert link["frnr"] == made[0]["frNr"]
    event = next(e for e in calendar_events(google_url, calendar_ids(ctx.hub_dsn)[employee]) if e["id"] == gid)
    assert marker_of(event)[1] == made[0]["frNr"]  # the Google event now carries its Advoware id


def _linked_pair(ctx: SyncContext, advoware_url: str, google_url: str) -> tuple[str, str, dict, dict]:
    """After a full sync and a no-op run (so Google's sync token is past the sync's own writes): an
    employee, their calendar, a plain linked appointment and its event."""
    sync_all(ctx)
    sync_all(ctx)
    employee = _first_employee(ctx)
    calendar_id = calendar_ids(ctx.hub_dsn)[employee]
    target = next(
        t for t in termine(advoware_url, employee) if t["frNr"] > 0 and not t["dauertermin"] and not t["abwesenheit"]
    )
    event = next(e for e in calendar_events(google_url, calendar_id) if marker_of(e)[1] == target["frNr"])
    return employee, calendar_id, target, event


def _patch_event(ctx: SyncContext, employee: str, calendar_id: str, event_id: str, body: dict[str, Any]) -> None:
    """A person's edit of the event in Google."""
    session, _ = ctx.calendar(employee)
    session.execute(lambda s: s.events().patch(calendarId=calendar_id, eventId=event_id, body=body), "events.patch")


def _event(google_url: str, calendar_id: str, event_id: str) -> dict[str, Any]:
    return next(e for e in calendar_events(google_url, calendar_id) if e["id"] == event_id)


def test_stale_change_stamp_skips_the_advoware_update(ctx: SyncContext, advoware_url: str, google_url: str) -> None:
    employee, calendar_id, target, event = _linked_pair(ctx, advoware_url, google_url)
    _patch_event(ctx, employee, calendar_id, event["id"], {"location": "Raum aus Google"})
    prep = prepare(ctx, new_run_id(), employee, RunParams())
    assert prep["counts"].get("update_advoware") == 1

    # meanwhile someone edits the appointment in Advoware
    ctx.advoware.update_termin(target["frNr"], {**target, "ort": "Raum aus Advoware"})
    summary = run_phase(ctx, prep["plan_id"], 4)
    assert summary["counts"] == {"advoware.skipped": 1}
    (now,) = [t for t in termine(advoware_url, employee) if t["frNr"] == target["frNr"]]
    assert now["ort"] == "Raum aus Advoware"  # the fresher edit was not overwritten

    # the next run sees both changed: advoware_wins carries the Advoware edit into Google
    _, results = sync_all(ctx, employees=[employee])
    assert results[employee]["status"] == "success"
    assert _event(google_url, calendar_id, event["id"])["location"] == "Raum aus Advoware"


def test_a_google_edit_after_an_incremental_plan_is_not_overwritten(
    ctx: SyncContext, advoware_url: str, google_url: str
) -> None:
    employee, calendar_id, target, event = _linked_pair(ctx, advoware_url, google_url)
    ctx.advoware.update_termin(target["frNr"], {**target, "ort": "Raum aus Advoware"})
    prep = prepare(ctx, new_run_id(), employee, RunParams())  # incremental: Google unchanged, not listed
    assert prep["counts"].get("update_google") == 1

    # meanwhile (e.g. between an Airflow retry's attempts) a person edits the event in Google
    _patch_event(ctx, employee, calendar_id, event["id"], {"description": "Notiz aus Google"})
    summary = run_phase(ctx, prep["plan_id"], 4)
    assert summary["counts"] == {"google.skipped": 1}
    # the person's edit survived
    assert _event(google_url, calendar_id, event["id"])["description"] == "Notiz aus Google"

    # the next run sees both sides changed and settles it by the conflict policy (advoware_wins)
    _, results = sync_all(ctx, employees=[employee])
    assert results[employee]["status"] == "success"
    assert _event(google_url, calendar_id, event["id"])["location"] == "Raum aus Advoware"


def test_a_google_change_outside_the_mapping_does_not_block_later_updates(
    ctx: SyncContext, advoware_url: str, google_url: str
) -> None:
    employee, calendar_id, target, event = _linked_pair(ctx, advoware_url, google_url)
    # a field the mapping ignores: Google's `updated` moves, the content fingerprint does not
    _patch_event(ctx, employee, calendar_id, event["id"], {"colorId": "5"})
    before = (total_writes(advoware_url), total_writes(google_url))
    _, results = sync_all(ctx, employees=[employee])
    assert results[employee]["status"] == "success"
    assert (total_writes(advoware_url), total_writes(google_url)) == before

    ctx.advoware.update_termin(target["frNr"], {**target, "ort": "Neuer Raum"})
    _, results = sync_all(ctx, employees=[employee])
    assert results[employee]["status"] == "success"
    assert _event(google_url, calendar_id, event["id"])["location"] == "Neuer Raum"


def test_failing_items_are_recorded_and_the_phase_fails_at_the_end(
    ctx: SyncContext, advoware_url: str, google_url: str
) -> None:
    from tests.calendar_helpers import faults

    employee = sorted(ctx.advoware.list_mitarbeiter(), key=lambda m: m["kuerzel"])[0]["kuerzel"]
    from include.calendar_sync.employees import active_employees

    active_employees(ctx.advoware, ctx.hub)
    prep = prepare(ctx, new_run_id(), employee, RunParams())
    faults(google_url, {"match": "batch", "kind": "status", "status": 500, "count": 50})
    ctx.google.backoff.max_retries = 0
    with pytest.raises(PhaseFailed):
        run_phase(ctx, prep["plan_id"], 1)
    failed = [lk for lk in links(ctx.hub_dsn, employee) if lk["status"] == "failed"]
    assert failed and all(lk["attempts"] == 1 and lk["last_error"] for lk in failed)
    assert all(lk["google_event_id"] is None for lk in failed)  # half rows: the planner ignores them

    faults(google_url)  # the outage is over: the retried phase converges, nothing twice
    ctx.google.backoff.max_retries = 4
    summary = run_phase(ctx, prep["plan_id"], 1)
    assert summary["counts"].get("google.failed") is None
    events = calendar_events(google_url, calendar_ids(ctx.hub_dsn)[employee])
    frnrs = [marker_of(e)[1] for e in events]
    assert len(frnrs) == len(set(frnrs)) == len(termine(advoware_url, employee))


def test_the_demo_changes_on_both_sides_are_carried_across(
    ctx: SyncContext, advoware_url: str, google_url: str, hub: str
) -> None:
    from devstack.calendar_demo import make_changes

    _, results = sync_all(ctx)
    edits = make_changes(ctx, sorted(results))
    assert len(edits) == 5 and not [e.note for e in edits if e.arrived(ctx)]  # none there before the run
    run_id, again = sync_all(ctx)
    assert [e.note for e in edits if not e.arrived(ctx)] == []
    assert {r["status"] for r in again.values()} == {"success"}, again
    text = table(hub, run_id)
    total = text.splitlines()[-2].split()
    # G+ 1 (new in Advoware), G~ 1 (moved), G- 1 (deleted); A+ 1 (new in Google), A~ 1 (renamed)
    assert total[1:4] == ["1", "1", "1"] and total[8:10] == ["1", "1"], text  # G+ G~ G-, A+ A~
    for employee, calendar_id in calendar_ids(hub).items():
        own = sorted(t["frNr"] for t in termine(advoware_url, employee))
        assert sorted(marker_of(e)[1] for e in calendar_events(google_url, calendar_id)) == own
    assert [t["text"] for t in termine(advoware_url) if t["text"] == "Im Kalender umbenannt"]
    assert [t["text"] for t in termine(advoware_url) if t["text"] == "Neuer Termin aus Google"]


def test_recover_rebuilds_lost_links_and_the_next_run_writes_nothing(
    ctx: SyncContext, advoware_url: str, google_url: str, hub: str
) -> None:
    from include import cli

    sync_all(ctx)
    employee = _first_employee(ctx)
    before = {(lk["frnr"], lk["google_event_id"]) for lk in links(hub, employee)}
    with connect(hub) as conn:
        conn.execute("DELETE FROM calendar_links WHERE employee = %s", (employee,))  # the hub was lost
    assert cli.main(["calendar", "recover", "--employee", employee], settings=ctx.settings) == 0
    assert {(lk["frnr"], lk["google_event_id"]) for lk in links(hub, employee)} == before
    writes = (total_writes(advoware_url), total_writes(google_url))
    _, results = sync_all(ctx, employees=[employee])
    assert results[employee]["status"] == "success"
    assert (total_writes(advoware_url), total_writes(google_url)) == writes


def test_every_write_is_one_info_line_naming_employee_frnr_event_and_action(
    ctx: SyncContext, advoware_url: str, google_url: str, hub: str, caplog: pytest.LogCaptureFixture
) -> None:
    """What an administrator reads in a task log: which appointment was touched, by ids; never a text."""
    import logging

    with caplog.at_level(logging.INFO, logger="include.calendar_sync"):
        sync_all(ctx)  # the initial sync: every Google insert (batched) is a line of its own
    employee = _first_employee(ctx)
    inserted = sorted(r.getMessage() for r in caplog.records if r.getMessage().startswith(f"write {employee} "))
    expected = sorted(
        f"write {employee} create_google frNr={lk['frnr']} event={lk['google_event_id']}: created"
        for lk in links(hub, employee)
        if lk["status"] == "linked"
    )
    assert inserted == expected and len(expected) == len(termine(advoware_url, employee))

    gid = _user_event(ctx, employee, "Vertraulich: Mandant Müller")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="include.calendar_sync"):
        sync_all(ctx)
    (row,) = [lk for lk in links(hub, employee) if lk["google_event_id"] == gid]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("write ")]
    assert lines == [f"write {employee} create_advoware frNr={row['frnr']} event={gid}: created"]
    assert "Müller" not in caplog.text and "Vertraulich" not in caplog.text
