"""Parking of calendar items that fail permanently, against the sandboxes with the real hub and Redis.

With `calendar_max_attempts=2`: the first run fails the item's phase (so the task would retry), the
second parks it (a dead letter with ids only) and the employee's later phases and finalize run; the
parked item is left out of the next plans; a replay (CLI or the gateway endpoint) releases it and
the next run syncs it once the cause is gone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from include import cli
from include.calendar_engine.ids import event_id
from include.calendar_engine.marker import marker_of
from include.calendar_sync.context import SyncContext
from include.calendar_sync.runner import sync_all
from include.dag_ids import CALENDAR_SYNC_DAG
from include.hub import calendars as hub_calendars
from include.hub import dead_letters
from include.hub.db import connect
from include.settings import AirflowApiSettings, GatewaySettings, Settings
from sandbox.runner import ServerThread
from tests.calendar_helpers import (
    calendar_events,
    calendar_ids,
    faults,
    links,
    make_ctx,
    seed_firm,
    stats,
    termine,
)
from tests.integration.test_airflow_api import PASSWORD, USER, make_fake_airflow
from webhook_gateway.app import create_app

pytestmark = pytest.mark.timeout(120)

REJECTED_TEXT = "Termin den Google ablehnt"
USER_TEXT = "Termin aus Google den Advoware ablehnt"
WRITE_TOKEN = "parking-test-write-token"


@pytest.fixture
def airflow() -> Iterator[tuple[Any, str]]:
    """Airflow's REST API as the replay's calendar trigger sees it (tests/integration/test_airflow_api.py)."""
    app = make_fake_airflow(dags=(CALENDAR_SYNC_DAG,))
    with ServerThread(app) as server:
        yield app, server.url


def _with_airflow(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={
            "airflow_api": AirflowApiSettings(_env_file=None, url=url, username=USER, password=PASSWORD, timeout_s=5)
        }
    )


@pytest.fixture
def ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> Iterator[SyncContext]:
    seed_firm(advoware_url)
    c = make_ctx(advoware_url, google_url, redis_url, hub, tmp_path, calendar_max_attempts=2)
    yield c
    c.close()


def _day(days: int) -> str:
    return (date.today() + timedelta(days=days)).isoformat()


def _advoware_appointment(ctx: SyncContext, employee: str, text: str) -> int:
    record = ctx.advoware.create_termin(
        {
            "text": text,
            "kuerzel": employee,
            "anwalt": employee,
            "datum": f"{_day(9)}T10:00:00",
            "uhrzeitVon": "10:00:00",
            "datumBis": f"{_day(9)}T11:00:00",
            "uhrzeitBis": "11:00:00",
        }
    )
    return int(record["frNr"])


def _user_event(ctx: SyncContext, employee: str, title: str) -> str:
    """An appointment a person enters in Google (no marker, server-made id)."""
    session, calendar_id = ctx.calendar(employee)
    body = {
        "summary": title,
        "start": {"dateTime": f"{_day(11)}T14:00:00+02:00", "timeZone": "Europe/Berlin"},
        "end": {"dateTime": f"{_day(11)}T15:00:00+02:00", "timeZone": "Europe/Berlin"},
    }
    created = session.execute(lambda s: s.events().insert(calendarId=calendar_id, body=body), "events.insert")
    return str(created["id"])


def _open_letters(hub: str) -> list[dict[str, Any]]:
    with connect(hub) as conn:
        return dead_letters.list_(conn, source="calendar_sync")


def _run_counts(hub: str, employee: str) -> dict[str, Any]:
    """The run log row of the employee's latest run (plan and phase counts)."""
    with psycopg.connect(hub) as conn:
        (counts,) = conn.execute(
            "SELECT counts FROM sync_runs WHERE kind = 'calendar' AND employee = %s ORDER BY started_at DESC LIMIT 1",
            (employee,),
        ).fetchone()
    return counts


def _requests(url: str, endpoint: str) -> int:
    return int(stats(url)["requests"].get(endpoint, 0))


def test_an_item_google_rejects_is_parked_the_rest_syncs_and_a_replay_syncs_it_once_fixed(
    ctx: SyncContext,
    advoware_url: str,
    google_url: str,
    hub: str,
    capsys: pytest.CaptureFixture[str],
    airflow: tuple[Any, str],
) -> None:
    _, first = sync_all(ctx)
    assert {r["status"] for r in first.values()} == {"success"}
    employee = sorted(calendar_ids(hub))[0]
    calendar_id = calendar_ids(hub)[employee]
    # the employee's other work this run: a Google-made appointment (phase 2) and an Advoware edit (phase 4)
    user_gid = _user_event(ctx, employee, "Besprechung aus Google")
    edited = next(t for t in termine(advoware_url, employee) if t["frNr"] > 0 and not t["dauertermin"])
    ctx.advoware.update_termin(edited["frNr"], {**edited, "ort": "Raum 4 (geaendert)"})
    frnr = _advoware_appointment(ctx, employee, REJECTED_TEXT)  # phase 1: Google answers 400 for it
    gid = event_id(employee, frnr)
    faults(google_url, {"match": "events.insert", "kind": "status", "status": 400, "reason": "invalid"})

    _, run1 = sync_all(ctx, employees=[employee])
    assert run1[employee]["status"] == "failed"  # attempt 1 of 2: the phase fails, Airflow would retry
    (row,) = [lk for lk in links(hub, employee) if lk["frnr"] == frnr]
    assert (row["status"], row["attempts"], row["google_event_id"]) == ("failed", 1, None)
    assert _open_letters(hub) == []
    assert not [t for t in termine(advoware_url, employee) if t["text"] == "Besprechung aus Google"]

    _, run2 = sync_all(ctx, employees=[employee])
    assert run2[employee]["status"] == "success" and run2[employee]["token_saved"]  # finalize ran
    assert run2[employee]["counts"]["phase1"].get("google.parked") == 1
    (letter,) = _open_letters(hub)
    assert letter["entity_id"] == f"{employee}:{frnr}" and letter["attempts"] == 2
    assert letter["payload"] == {"employee": employee, "frnr": frnr, "google_event_id": gid, "action": "create_google"}
    assert "HTTP 400" in letter["reason"] and str(frnr) in letter["reason"]
    assert REJECTED_TEXT not in json.dumps(dead_letters.to_json(letter))  # ids and status only
    (row,) = [lk for lk in links(hub, employee) if lk["frnr"] == frnr]
    assert (row["status"], row["attempts"]) == ("failed", 2)
    # the later phases of the same employee ran
    (made,) = [t for t in termine(advoware_url, employee) if t["text"] == "Besprechung aus Google"]
    events = {e["id"]: e for e in calendar_events(google_url, calendar_id)}
    assert marker_of(events[user_gid])[1] == made["frNr"]
    assert next(e for e in events.values() if marker_of(e)[1] == edited["frNr"])["location"] == "Raum 4 (geaendert)"
    assert gid not in events

    inserts = _requests(google_url, "events.insert")
    _, run3 = sync_all(ctx, employees=[employee])
    assert run3[employee]["status"] == "success"
    assert _requests(google_url, "events.insert") == inserts  # parked: not tried again
    assert _run_counts(hub, employee)["plan"].get("report_parked") == 1
    assert [t["frNr"] for t in termine(advoware_url, employee) if t["text"] == REJECTED_TEXT] == [frnr]

    faults(google_url)  # the cause is fixed; a person replays the dead letter
    fake_airflow, airflow_url = airflow
    assert cli.main(["dead-letters", "replay", str(letter["id"])], _with_airflow(ctx.settings, airflow_url)) == 0
    assert "released" in capsys.readouterr().out
    run = fake_airflow.state.runs[(CALENDAR_SYNC_DAG, f"replay__calendar__{letter['id']}")]
    assert run["conf"] == {"full_content": False, "employees": [employee]}  # a run for that employee now
    assert _open_letters(hub) == []
    (row,) = [lk for lk in links(hub, employee) if lk["frnr"] == frnr]
    assert (row["status"], row["attempts"]) == ("pending", 0)
    assert cli.main(["dead-letters", "replay", str(letter["id"])], ctx.settings) == 2  # only once

    _, run4 = sync_all(ctx, employees=[employee])
    assert run4[employee]["status"] == "success"
    events = {e["id"]: e for e in calendar_events(google_url, calendar_id)}
    assert marker_of(events[gid])[1] == frnr and events[gid]["summary"] == REJECTED_TEXT
    (row,) = [lk for lk in links(hub, employee) if lk["frnr"] == frnr]
    assert (row["status"], row["attempts"], row["google_event_id"], row["last_error"]) == ("linked", 0, gid, None)
    frnrs = [marker_of(e)[1] for e in events.values()]
    assert len(frnrs) == len(set(frnrs)) == len(termine(advoware_url, employee))  # each once


def test_a_google_item_advoware_rejects_is_parked_and_replayed_through_the_gateway(
    ctx: SyncContext, advoware_url: str, google_url: str, hub: str, airflow: tuple[Any, str]
) -> None:
    sync_all(ctx)
    employee = sorted(calendar_ids(hub))[0]
    gid = _user_event(ctx, employee, USER_TEXT)
    faults(advoware_url, {"match": "Termine.create", "kind": "status", "status": 400, "principal": employee})

    _, run1 = sync_all(ctx, employees=[employee])
    assert run1[employee]["status"] == "failed"
    _, run2 = sync_all(ctx, employees=[employee])
    assert run2[employee]["status"] == "success" and run2[employee]["token_saved"]
    assert run2[employee]["counts"]["phase2"].get("advoware.parked") == 1
    (letter,) = _open_letters(hub)
    assert letter["entity_id"] == f"{employee}:{gid}"
    assert letter["payload"] == {
        "employee": employee,
        "frnr": None,
        "google_event_id": gid,
        "action": "create_advoware",
    }
    assert USER_TEXT not in json.dumps(dead_letters.to_json(letter))

    # the sync token moved past the event: only the replay's full read can bring it back
    with connect(hub) as conn:
        assert hub_calendars.get(conn, employee).sync_token  # type: ignore[union-attr]
    creates = _requests(advoware_url, "Termine.create")
    _, run3 = sync_all(ctx, employees=[employee])
    assert run3[employee]["status"] == "success"
    assert _requests(advoware_url, "Termine.create") == creates

    faults(advoware_url)
    fake_airflow, airflow_url = airflow
    settings = _with_airflow(ctx.settings, airflow_url).model_copy(
        update={"gateway": GatewaySettings(_env_file=None, api_token=WRITE_TOKEN)}
    )
    auth = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    with TestClient(create_app(settings)) as client:
        listed = client.get("/webhooks/dead-letters", params={"source": "calendar_sync"}, headers=auth).json()
        assert [d["id"] for d in listed["dead_letters"]] == [letter["id"]]
        r = client.post(f"/webhooks/dead-letters/{letter['id']}/replay", headers=auth)
        assert r.status_code == 200 and r.json()["replayed"]["replayed_at"]
        assert client.post(f"/webhooks/dead-letters/{letter['id']}/replay", headers=auth).status_code == 409
    runs = [r for (dag, _), r in fake_airflow.state.runs.items() if dag == CALENDAR_SYNC_DAG]
    assert [(r["dag_run_id"], r["conf"]) for r in runs] == [
        (f"replay__calendar__{letter['id']}", {"full_content": False, "employees": [employee]})
    ]

    _, run4 = sync_all(ctx, employees=[employee])
    assert run4[employee]["status"] == "success"
    (made,) = [t for t in termine(advoware_url, employee) if t["text"] == USER_TEXT]
    (row,) = [lk for lk in links(hub, employee) if lk["google_event_id"] == gid]
    assert (row["frnr"], row["status"], row["attempts"]) == (made["frNr"], "linked", 0)
    event = next(e for e in calendar_events(google_url, calendar_ids(hub)[employee]) if e["id"] == gid)
    assert marker_of(event)[1] == made["frNr"]
    _, run5 = sync_all(ctx, employees=[employee])  # settled: nothing created twice
    assert run5[employee]["status"] == "success"
    assert len([t for t in termine(advoware_url, employee) if t["text"] == USER_TEXT]) == 1
