"""The `advoware_calendar_sync` DAG under `dag.test()` against the Advoware and Google sandboxes, with
the real hub (PostgreSQL) and Redis. Connections come from AIRFLOW_CONN_* built by include.airflow_env
(as in deployment); the test checks what a user would: events per calendar, Termine in Advoware, the
sandboxes' write counters, the hub's links and run log.

dag.test() runs task instances directly (no scheduler), so the pools need not exist here; it does
honour retries in real time, so the retry delay is set to 0 s (Airflow waits ~1 s) before the DAG
file is parsed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from include import airflow_env
from include.calendar_engine.marker import marker_of
from include.dag_ids import CALENDAR_SYNC_DAG
from tests.calendar_helpers import (
    advoware_state,
    calendar_events,
    calendar_ids,
    faults,
    links,
    make_ctx,
    seed_firm,
    settings,
    stats,
    termine,
    total_writes,
)

os.environ["CALENDAR_SYNC_RETRY_DELAY_S"] = "0"  # read when the DAG file is parsed
DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = CALENDAR_SYNC_DAG
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def airflow_db() -> None:
    assert os.environ["AIRFLOW_HOME"] != str(Path.home() / "airflow")
    from airflow.utils import db

    db.initdb()


@pytest.fixture
def conns(
    monkeypatch: pytest.MonkeyPatch, advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path
) -> dict[str, Any]:
    """AIRFLOW_CONN_* of the test's sandboxes; returns the Advoware extras to change per test."""
    s = settings(advoware_url, google_url, redis_url, hub, tmp_path)
    env = airflow_env.connections(s, root=tmp_path)
    for cid in ("ADVOWARE_DEFAULT", "GOOGLE_CALENDAR_DEFAULT", "REDIS_DEFAULT", "SYNC_HUB_DEFAULT"):
        monkeypatch.setenv(f"AIRFLOW_CONN_{cid}", env[f"AIRFLOW_CONN_{cid}"])
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("GOOGLE_MAX_RETRIES", "2")
    monkeypatch.setenv("ADVOWARE_WRITE_PROTECTION", "false")
    adv = json.loads(env["AIRFLOW_CONN_ADVOWARE_DEFAULT"])

    def set_advoware(**extra: Any) -> None:
        adv["extra"].update(extra)
        monkeypatch.setenv("AIRFLOW_CONN_ADVOWARE_DEFAULT", json.dumps(adv))

    set_advoware(max_retries=1)
    return {"set_advoware": set_advoware, "settings": s}


def _dag():  # -> airflow.sdk.DAG
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{DAG_ID}.py"), safe_mode=False)
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


def _run(**conf: Any):  # -> DagRun
    return _dag().test(run_conf=conf)


def _states(run: Any, task_id: str) -> list[str]:
    return [ti.state for ti in run.get_task_instances() if ti.task_id == f"employee_sync.{task_id}"]


def _assert_converged(advoware_url: str, google_url: str, hub: str, *, unmarked: int = 0) -> None:
    """Every own Advoware appointment exactly once in its employee's calendar, every one linked;
    besides them only `unmarked` events (a person's own, left alone)."""
    cals = calendar_ids(hub)
    for employee in sorted(cals):
        own = sorted(t["frNr"] for t in termine(advoware_url, employee))
        events = calendar_events(google_url, cals[employee])
        marked = sorted(marker_of(e)[1] for e in events if marker_of(e)[1] is not None)
        assert marked == own and len(events) - len(marked) == unmarked, employee
        linked = [lk for lk in links(hub, employee) if lk["status"] == "linked"]
        assert sorted(lk["frnr"] for lk in linked) == own, employee


# -- shape -------------------------------------------------------------------------------------------
def test_dag_shape() -> None:
    dag = _dag()
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.timetable.expression == "*/15 * * * *"
    assert dag.doc_md and DAG_ID in dag.doc_md
    assert set(dag.params) == {"full_content", "employees", "dry_run", "force_deletions", "recover", "refill_google"}
    ids = set(dag.task_ids)
    group = ["phase_1_new_advoware", "phase_2_new_google", "phase_3_deletions", "phase_4_updates"]
    assert ids == {"plan_employees", *(f"employee_sync.{t}" for t in group)}
    for upstream, downstream in zip(group, group[1:], strict=False):
        task = dag.get_task(f"employee_sync.{downstream}")
        assert f"employee_sync.{upstream}" in task.upstream_task_ids
        assert task.trigger_rule == "all_done"  # the unit's other employees go on after a failure
    assert all(dag.get_task(f"employee_sync.{t}").map_index_template == "{{ unit }}" for t in group)
    pools = {t: dag.get_task(t).pool for t in ids}
    assert pools["plan_employees"] == "advoware_api"
    assert pools["employee_sync.phase_2_new_google"] == "advoware_api"
    assert pools["employee_sync.phase_1_new_advoware"] == "google_calendar_api"
    for task_id in ids:
        task = dag.get_task(task_id)
        assert task.retries == 3 and float(task.retry_exponential_backoff) == 2.0 and task.max_retry_delay


# -- runs --------------------------------------------------------------------------------------------
def test_first_run_creates_everything_and_a_second_writes_nothing(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str
) -> None:
    from airflow.sdk import DagRunState

    seed_firm(advoware_url)
    run = _run()
    assert run.state == DagRunState.SUCCESS
    assert _states(run, "phase_4_updates") == ["success"] * 3
    _assert_converged(advoware_url, google_url, hub)
    assert total_writes(advoware_url) == 0  # nothing was new on the Google side

    before = (total_writes(advoware_url), total_writes(google_url))
    second = _run()
    assert second.state == DagRunState.SUCCESS
    assert (total_writes(advoware_url), total_writes(google_url)) == before
    _assert_converged(advoware_url, google_url, hub)


def test_injected_5xx_and_429_converge_without_duplicates(
    airflow_db: None,
    conns: dict,
    advoware_url: str,
    google_url: str,
    hub: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow.sdk import DagRunState

    seed_firm(advoware_url, employees=2)
    # no retries inside the clients: every fault reaches the task, which Airflow retries
    monkeypatch.setenv("GOOGLE_MAX_RETRIES", "0")
    conns["set_advoware"](max_retries=0)
    faults(
        advoware_url,
        {"match": "Termine.*", "kind": "status", "status": 503, "rate": 0.2, "seed": 3},
        {"match": "Mitarbeiter.list", "kind": "status", "status": 429, "rate": 0.2, "seed": 5},
    )
    faults(
        google_url,
        {"match": "*", "kind": "status", "status": 500, "rate": 0.1, "seed": 7},
        {"match": "*", "kind": "status", "status": 429, "rate": 0.1, "seed": 11, "reason": "rateLimitExceeded"},
    )
    states, tries = [], []
    for _ in range(4):  # retries inside a run first; a run that still failed is followed by the next one
        run = _run()
        states.append(run.state)
        tries += [ti.try_number for ti in run.get_task_instances()]
        if run.state == DagRunState.SUCCESS:
            break
    assert states[-1] == DagRunState.SUCCESS, states
    # some failure reached Airflow and was recovered: a task retried, a later run, or an employee whose
    # planning failed in plan_employees planned again by its own phase task
    replanned = "its own phase task plans it again" in caplog.text
    assert len(states) > 1 or max(tries) > 1 or replanned
    assert sum(stats(google_url)["faults"].values()) > 0  # the faults did happen
    faults(advoware_url)
    faults(google_url)
    _assert_converged(advoware_url, google_url, hub)
    before = (total_writes(advoware_url), total_writes(google_url))
    assert _run().state == DagRunState.SUCCESS  # and it is stable
    assert (total_writes(advoware_url), total_writes(google_url)) == before


def test_an_empty_advoware_list_stops_the_run_without_deletions(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str
) -> None:
    from airflow.sdk import DagRunState

    seed_firm(advoware_url, employees=1)
    assert _run().state == DagRunState.SUCCESS
    events_before = sum(len(calendar_events(google_url, c)) for c in calendar_ids(hub).values())
    writes = (total_writes(advoware_url), total_writes(google_url))
    faults(advoware_url, {"match": "Termine.list", "kind": "empty_list"})  # every listing comes back empty
    run = _run()
    assert run.state == DagRunState.FAILED
    assert _states(run, "phase_1_new_advoware") == ["failed"]
    # nobody of the unit got through phase 1: phases 2 and 3 have nobody to work for, and the last
    # phase fails at once (a retry cannot help), so the run shows the failure
    assert _states(run, "phase_2_new_google") == _states(run, "phase_3_deletions") == ["skipped"]
    assert _states(run, "phase_4_updates") == ["failed"]
    assert [ti.try_number for ti in run.get_task_instances() if ti.task_id.endswith("phase_4_updates")] == [1]
    assert (total_writes(advoware_url), total_writes(google_url)) == writes
    assert sum(len(calendar_events(google_url, c)) for c in calendar_ids(hub).values()) == events_before
    from include.hub.db import connect

    with connect(hub) as conn:
        row = conn.execute("SELECT status, error FROM sync_runs WHERE run_id = %s", (run.run_id,)).fetchone()
    assert row["status"] == "stopped" and "advoware returned nothing" in row["error"]


def test_write_protection_keeps_every_write_away_from_advoware(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str, tmp_path: Path
) -> None:
    from airflow.sdk import DagRunState

    seed_firm(advoware_url, employees=1)
    conns["set_advoware"](write_protection=True)
    assert _run().state == DagRunState.SUCCESS
    (employee,) = calendar_ids(hub)
    ctx = make_ctx(advoware_url, google_url, conns["settings"].redis_url, hub, tmp_path)
    session, calendar_id = ctx.calendar(employee)
    body = {"summary": "Nur in Google", "start": {"date": "2030-01-02"}, "end": {"date": "2030-01-03"}}
    session.execute(lambda s: s.events().insert(calendarId=calendar_id, body=body), "events.insert")
    own = next(e for e in calendar_events(google_url, calendar_id) if marker_of(e)[1])
    session.execute(lambda s: s.events().delete(calendarId=calendar_id, eventId=own["id"]), "events.delete")
    ctx.close()

    assert _run().state == DagRunState.SUCCESS
    assert total_writes(advoware_url) == 0
    assert "Nur in Google" not in {t["text"] for t in termine(advoware_url)}
    # the deleted event was restored from Advoware; the Google-only one is left alone
    _assert_converged(advoware_url, google_url, hub, unmarked=1)


def test_a_prefilled_calendar_is_adopted_not_duplicated(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str, tmp_path: Path
) -> None:
    """Events a previous installation wrote (no marker, other ids) are matched by content."""
    from airflow.sdk import DagRunState

    from include.calendar_engine.mapping_advoware import from_advoware
    from include.calendar_engine.mapping_google import to_google
    from include.calendar_sync.calendars import ensure_calendar
    from include.calendar_sync.employees import record_employees

    seed_firm(advoware_url, employees=1)
    ctx = make_ctx(advoware_url, google_url, conns["settings"].redis_url, hub, tmp_path)
    employee = ctx.advoware.list_mitarbeiter()[0]["kuerzel"]
    record_employees(ctx.hub, ctx.advoware.list_mitarbeiter())
    calendar_id = ensure_calendar(ctx, employee)
    ctx.close()
    own = termine(advoware_url, employee)
    copies = []
    for i, t in enumerate(own):
        body = to_google(from_advoware(t, employee), employee=employee, frnr=None)
        body.pop("extendedProperties")
        copies.append({**body, "id": f"motia{i:05d}"})
    httpx.post(f"{google_url}/_sandbox/seed", json={"events": {calendar_id: copies}}, timeout=30).raise_for_status()
    google_writes = total_writes(google_url)

    assert _run().state == DagRunState.SUCCESS
    events = calendar_events(google_url, calendar_id)
    assert len(events) == len(own)  # adopted, none created beside them
    assert {e["id"] for e in events} == {c["id"] for c in copies}
    assert sorted(marker_of(e)[1] for e in events) == sorted(t["frNr"] for t in own)
    writes = Counter(stats(google_url)["writes"])
    assert writes["events.insert"] == 0 and total_writes(google_url) - google_writes == len(own)


def test_dry_run_plans_and_writes_nothing(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str
) -> None:
    from airflow.sdk import DagRunState

    from include.hub.db import connect

    seed_firm(advoware_url, employees=1)
    run = _run(dry_run=True)
    assert run.state == DagRunState.SUCCESS
    assert (total_writes(advoware_url), total_writes(google_url)) == (0, 0)
    assert calendar_ids(hub) == {} and links(hub) == []
    with connect(hub) as conn:
        plan = conn.execute("SELECT dry_run, counts FROM sync_plans WHERE run_id = %s", (run.run_id,)).fetchone()
        status = conn.execute("SELECT status FROM sync_runs WHERE run_id = %s", (run.run_id,)).fetchone()
    employee = advoware_state(advoware_url)["mitarbeiter"][0]["kuerzel"]
    in_scope = len(termine(advoware_url, employee))
    assert plan["dry_run"] is True and plan["counts"]["create_google"] == in_scope
    assert status["status"] == "dry_run"


def test_one_employee_failing_in_phase_2_leaves_the_others_synced_and_its_retry_redoes_only_its_items(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str, tmp_path: Path
) -> None:
    """A new Google event per employee goes to Advoware in phase 2; Advoware refuses the first create
    of one employee: only that employee's phase 2 is retried, and its retry creates only its item."""
    from airflow.sdk import DagRunState

    seed_firm(advoware_url, employees=3)
    assert _run().state == DagRunState.SUCCESS
    cals = calendar_ids(hub)
    failing, other, quiet = sorted(cals)
    ctx = make_ctx(advoware_url, google_url, conns["settings"].redis_url, hub, tmp_path)
    for i, employee in enumerate((failing, other)):
        session, calendar_id = ctx.calendar(employee)
        body = {"summary": f"Neu {i}", "start": {"date": f"2030-03-0{i + 2}"}, "end": {"date": f"2030-03-0{i + 3}"}}
        session.execute(lambda s, c=calendar_id, b=body: s.events().insert(calendarId=c, body=b), "events.insert")
    ctx.close()
    faults(advoware_url, {"match": "Termine.create", "kind": "status", "status": 503, "count": 1, "principal": failing})
    before = stats(advoware_url)

    run = _run()

    assert run.state == DagRunState.SUCCESS
    tries = {
        (ti.task_id.split(".")[-1], ti.rendered_map_index): ti.try_number
        for ti in run.get_task_instances()
        if ti.task_id.startswith("employee_sync.")
    }
    assert tries[("phase_2_new_google", failing)] == 2  # failed once, retried
    assert tries[("phase_2_new_google", other)] == 1  # not held up, not redone
    assert {e for _, e in tries} == {failing, other}  # the quiet employee was closed in plan_employees
    assert all(tries[(t, e)] == 1 for t, e in tries if t != "phase_2_new_google")
    after = stats(advoware_url)
    assert after["requests"]["Termine.create"] - before["requests"].get("Termine.create", 0) == 3  # 1 refused, 2 made
    for employee in (failing, other):  # each new event became exactly one appointment of its employee
        made = after["by_principal"][employee]["writes"] - before["by_principal"].get(employee, {}).get("writes", 0)
        assert made == 1, employee
    assert quiet not in after["by_principal"] or (
        after["by_principal"][quiet]["writes"] == before["by_principal"].get(quiet, {}).get("writes", 0)
    )
    _assert_converged(advoware_url, google_url, hub)


# -- alerts --------------------------------------------------------------------------------------------
def test_an_employee_failing_past_its_retries_sends_exactly_one_alert(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str, tmp_path: Path, smtp_sink: Any
) -> None:
    """One mail per incident: after the last retry (not per retry), naming employee and run, ids only;
    the next run failing the same way is the same incident (no second mail)."""
    from airflow.sdk import DagRunState

    seed_firm(advoware_url, employees=2)
    assert _run().state == DagRunState.SUCCESS
    cals = calendar_ids(hub)
    failing = sorted(cals)[0]
    ctx = make_ctx(advoware_url, google_url, conns["settings"].redis_url, hub, tmp_path)
    session, calendar_id = ctx.calendar(failing)
    session.execute(
        lambda s: s.events().insert(
            calendarId=calendar_id,
            body={
                "summary": "Mandantin Gräfin Vertraulich",
                "start": {"date": "2030-04-02"},
                "end": {"date": "2030-04-03"},
            },
        ),
        "events.insert",
    )
    ctx.close()
    faults(advoware_url, {"match": "Termine.create", "kind": "status", "status": 503, "principal": failing})

    run = _run()
    assert run.state == DagRunState.FAILED
    tries = [ti.try_number for ti in run.get_task_instances() if ti.task_id == "employee_sync.phase_2_new_google"]
    assert tries == [4]  # retried three times, one mail at the end
    assert len(smtp_sink.messages) == 1
    mail, body = smtp_sink.messages[0], smtp_sink.bodies()[0]
    assert failing in mail["Subject"] and "failed after its retries" in mail["Subject"]
    assert run.run_id in body and "phase_2_new_google" in body and f"Employee: {failing}" in body
    secrets = [conns["settings"].advoware.password.get_secret_value()]
    texts = ["Gräfin", "Vertraulich", *(t["text"] for t in termine(advoware_url, failing) if t.get("text"))]
    assert not [x for x in secrets + texts if x and x in body + mail["Subject"]]

    assert _run().state == DagRunState.FAILED
    assert len(smtp_sink.messages) == 1  # the same incident: not mailed again


def test_a_safety_stop_and_parked_items_are_alerts_of_their_own(
    airflow_db: None,
    conns: dict,
    advoware_url: str,
    google_url: str,
    hub: str,
    smtp_sink: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from airflow.sdk import DagRunState

    seed_firm(advoware_url, employees=1)
    assert _run().state == DagRunState.SUCCESS
    faults(advoware_url, {"match": "Termine.list", "kind": "empty_list"})
    assert _run().state == DagRunState.FAILED
    (mail,) = smtp_sink.messages
    assert "safety stop" in mail["Subject"] and "Nothing was written" in smtp_sink.bodies()[0]

    faults(advoware_url)
    assert _run().state == DagRunState.SUCCESS
    # a change in Google that Advoware refuses every time is parked after its attempts: one mail naming it
    monkeypatch.setenv("SYNC_CALENDAR_MAX_ATTEMPTS", "2")
    from include.settings import get_settings

    get_settings.cache_clear()  # the tasks run in this process: they read the settings anew
    (employee,) = calendar_ids(hub)
    ctx = make_ctx(advoware_url, google_url, conns["settings"].redis_url, hub, tmp_path)
    session, calendar_id = ctx.calendar(employee)
    event = next(
        e
        for e in calendar_events(google_url, calendar_id)
        if marker_of(e)[1] and (marker_of(e)[1] or 0) > 0 and "dateTime" in e["start"] and not e.get("recurrence")
    )
    session.execute(
        lambda s: s.events().patch(calendarId=calendar_id, eventId=event["id"], body={"location": "Raum 9"}),
        "events.patch",
    )
    ctx.close()
    faults(advoware_url, {"match": "Termine.update", "kind": "status", "status": 422})
    assert _run().state == DagRunState.SUCCESS  # the parked item no longer fails its phase
    parked_mails = [m for m in smtp_sink.messages if "parked" in m["Subject"]]
    assert len(parked_mails) == 1 and employee in parked_mails[0]["Subject"]
    assert f"frNr={marker_of(event)[1]}" in smtp_sink.bodies()[smtp_sink.messages.index(parked_mails[0])]


def test_an_emptied_calendar_stops_once_mails_once_and_the_refill_param_puts_it_back(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str, tmp_path: Path, smtp_sink: Any
) -> None:
    """An employee empties their calendar in Google: Advoware keeps everything, the administrator gets
    one mail naming the two answers, and the trigger form's `refill_google` puts Google back."""
    from airflow.sdk import DagRunState

    seed_firm(advoware_url, employees=2)
    assert _run().state == DagRunState.SUCCESS
    cals = calendar_ids(hub)
    emptied, other = sorted(cals)
    before = {e["id"] for e in calendar_events(google_url, cals[emptied])}
    ctx = make_ctx(advoware_url, google_url, conns["settings"].redis_url, hub, tmp_path)
    session, calendar_id = ctx.calendar(emptied)
    for gid in before:
        session.execute(lambda s, g=gid: s.events().delete(calendarId=calendar_id, eventId=g), "events.delete")
    ctx.close()
    advoware_writes = total_writes(advoware_url)

    for _ in range(2):
        run = _run()
        assert run.state == DagRunState.FAILED
        assert [
            ti.rendered_map_index
            for ti in run.get_task_instances()
            if ti.task_id == "employee_sync.phase_1_new_advoware" and ti.state == "failed"
        ] == [emptied]
    assert total_writes(advoware_url) == advoware_writes  # Advoware keeps every appointment
    (mail,) = smtp_sink.messages  # one incident, one mail
    body = smtp_sink.bodies()[0]
    assert "safety stop" in mail["Subject"] and emptied in mail["Subject"]
    assert f"resolve-stop --employee {emptied} refill" in body and f"resolve-stop --employee {emptied} confirm" in body

    run = _run(employees=[emptied], refill_google=True)
    assert run.state == DagRunState.SUCCESS
    assert {e["id"] for e in calendar_events(google_url, calendar_id)} == before
    assert total_writes(advoware_url) == advoware_writes
    _assert_converged(advoware_url, google_url, hub)
    assert _run().state == DagRunState.SUCCESS and len(smtp_sink.messages) == 1


def test_a_calendar_deleted_in_google_is_made_again_with_one_mail(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str, tmp_path: Path, smtp_sink: Any
) -> None:
    from airflow.sdk import DagRunState

    seed_firm(advoware_url, employees=1)
    assert _run().state == DagRunState.SUCCESS
    ((employee, old),) = calendar_ids(hub).items()
    ctx = make_ctx(advoware_url, google_url, conns["settings"].redis_url, hub, tmp_path)
    session, _ = ctx.calendar(employee)
    session.execute(lambda s: s.calendars().delete(calendarId=old), "calendars.delete")
    ctx.close()
    advoware_writes = total_writes(advoware_url)

    assert _run().state == DagRunState.SUCCESS
    assert calendar_ids(hub)[employee] != old and total_writes(advoware_url) == advoware_writes
    _assert_converged(advoware_url, google_url, hub)
    (mail,) = smtp_sink.messages
    assert employee in mail["Subject"] and "made again" in mail["Subject"]
    assert "nothing was deleted in Advoware" in smtp_sink.bodies()[0]
    assert _run().state == DagRunState.SUCCESS and len(smtp_sink.messages) == 1


# -- units: many employees with work ---------------------------------------------------------------
def _google_event_for(ctx: Any, employee: str, day: str) -> None:
    """A person adds an event in the employee's Google calendar (phase 2 carries it to Advoware)."""
    session, calendar_id = ctx.calendar(employee)
    body = {"summary": "Neu", "start": {"date": day}, "end": {"date": day[:-2] + f"{int(day[-2:]) + 1:02d}"}}
    session.execute(lambda s: s.events().insert(calendarId=calendar_id, body=body), "events.insert")


def _tries(run: Any) -> dict[tuple[str, str], int]:
    return {
        (ti.task_id.split(".")[-1], ti.rendered_map_index): ti.try_number
        for ti in run.get_task_instances()
        if ti.task_id.startswith("employee_sync.")
    }


def _made_by(before: dict[str, Any], after: dict[str, Any], employee: str) -> int:
    return after["by_principal"].get(employee, {}).get("writes", 0) - before["by_principal"].get(employee, {}).get(
        "writes", 0
    )


def test_employees_beyond_the_threshold_share_units_and_a_failing_one_is_retried_alone(
    airflow_db: None,
    conns: dict,
    advoware_url: str,
    google_url: str,
    hub: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two units at most: five employees with work make units of three and two (neighbouring Kürzel);
    then three with work make units of two and one. Advoware refuses the first create of one employee:
    only its unit's phase 2 is retried, the retry redoes only that employee, and its unit mate's item
    is written once."""
    from airflow.sdk import DagRunState

    monkeypatch.setenv("SYNC_MAX_UNITS", "2")
    seed_firm(advoware_url, employees=6)  # the sandbox firm makes the last of 6 inactive: 5 active
    first = _run()
    assert first.state == DagRunState.SUCCESS
    active = sorted(calendar_ids(hub))
    assert len(active) == 5
    labels = sorted(
        ti.rendered_map_index for ti in first.get_task_instances() if ti.task_id == "employee_sync.phase_1_new_advoware"
    )
    assert labels == [f"{active[0]} … {active[2]} (3 employees)", f"{active[3]} … {active[4]} (2 employees)"]
    assert len(first.get_task_instances()) == 1 + 2 * 4
    _assert_converged(advoware_url, google_url, hub)

    failing, mate, other = active[:3]  # units: [failing, mate] and [other]
    ctx = make_ctx(advoware_url, google_url, conns["settings"].redis_url, hub, tmp_path)
    for i, employee in enumerate((failing, mate, other)):
        _google_event_for(ctx, employee, f"2030-03-0{i + 2}")
    ctx.close()
    faults(advoware_url, {"match": "Termine.create", "kind": "status", "status": 503, "count": 1, "principal": failing})
    before = stats(advoware_url)

    run = _run()

    assert run.state == DagRunState.SUCCESS
    tries = _tries(run)
    unit0, unit1 = f"{failing} … {mate} (2 employees)", other
    assert tries[("phase_2_new_google", unit0)] == 2  # failed once, retried
    assert {k: v for k, v in tries.items() if k != ("phase_2_new_google", unit0)} == {
        (t, u): 1
        for t in ("phase_1_new_advoware", "phase_2_new_google", "phase_3_deletions", "phase_4_updates")
        for u in (unit0, unit1)
        if (t, u) != ("phase_2_new_google", unit0)
    }
    after = stats(advoware_url)
    assert after["requests"]["Termine.create"] - before["requests"].get("Termine.create", 0) == 4  # 1 refused
    assert [_made_by(before, after, e) for e in (failing, mate, other)] == [1, 1, 1]  # the mate's not redone
    _assert_converged(advoware_url, google_url, hub)


def test_an_employee_failing_for_good_inside_a_unit_leaves_its_unit_mate_synced(
    airflow_db: None,
    conns: dict,
    advoware_url: str,
    google_url: str,
    hub: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp_sink: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One unit for everybody: Advoware refuses every create of one employee. Its unit mate still gets
    through phases 3 and 4 (its sync token saved, its run a success); the failing employee goes no
    further; the last phase fails at once, so the run shows it; one mail names only the failing one;
    the status view links both to their unit's task and the log has a group per employee."""
    from airflow.sdk import DagRunState

    from include.hub.db import connect

    monkeypatch.setenv("SYNC_MAX_UNITS", "1")
    seed_firm(advoware_url, employees=3)
    assert _run().state == DagRunState.SUCCESS
    failing, mate, quiet = sorted(calendar_ids(hub))
    ctx = make_ctx(advoware_url, google_url, conns["settings"].redis_url, hub, tmp_path)
    for i, employee in enumerate((failing, mate)):
        _google_event_for(ctx, employee, f"2030-04-0{i + 2}")
    ctx.close()
    with connect(hub) as conn:
        tokens_before = {
            r["employee"]: r["sync_token"]
            for r in conn.execute("SELECT employee, sync_token FROM employee_calendars").fetchall()
        }
    faults(advoware_url, {"match": "Termine.create", "kind": "status", "status": 503, "principal": failing})
    before = stats(advoware_url)

    run = _run()

    assert run.state == DagRunState.FAILED
    unit = f"{failing} … {mate} (2 employees)"
    states = {
        (ti.task_id.split(".")[-1], ti.rendered_map_index): (ti.state, ti.try_number)
        for ti in run.get_task_instances()
        if ti.task_id.startswith("employee_sync.")
    }
    assert states == {
        ("phase_1_new_advoware", unit): ("success", 1),
        ("phase_2_new_google", unit): ("failed", 4),
        ("phase_3_deletions", unit): ("success", 1),
        ("phase_4_updates", unit): ("failed", 1),
    }
    with connect(hub) as conn:
        rows = {
            r["employee"]: r
            for r in conn.execute(
                "SELECT employee, status, error, counts FROM sync_runs WHERE run_id = %s", (run.run_id,)
            ).fetchall()
        }
        tokens = {
            r["employee"]: r["sync_token"]
            for r in conn.execute("SELECT employee, sync_token FROM employee_calendars").fetchall()
        }
    assert rows[mate]["status"] == "success" and rows[mate]["counts"]["phases_done"] == 4
    assert tokens[mate] != tokens_before[mate]  # its changes are read, not read again next time
    assert rows[failing]["status"] == "failed" and rows[failing]["error"] == "phase 2: 1 item(s) failed"
    assert rows[failing]["counts"]["phases_done"] == 1 and tokens[failing] == tokens_before[failing]
    assert rows[quiet]["status"] == "success"  # closed in plan_employees
    after = stats(advoware_url)
    assert _made_by(before, after, mate) == 1 and _made_by(before, after, failing) == 0
    assert len(smtp_sink.messages) == 1
    mail, body = smtp_sink.messages[0], smtp_sink.bodies()[0]
    assert failing in mail["Subject"] and mate not in mail["Subject"] + body
    assert f"Employee: {failing}" in body and "phase_2_new_google" in body

    # the status view: both employees' log link is their unit's last task; its log has a group each
    import importlib.util

    from include.status.queries import Sources, collect

    spec = importlib.util.spec_from_file_location(
        "sync_status_plugin", DAGS.parent / "plugins" / "sync_status_plugin.py"
    )
    assert spec and spec.loader
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    links = plugin.AirflowHost()._links(collect(Sources(hub)), None, None).employee_logs
    unit_log = f"../dags/{DAG_ID}/runs/{quote(run.run_id, safe='')}/tasks/employee_sync.phase_4_updates/mapped/0"
    assert links[failing] == links[mate] == unit_log
    assert links[quiet].endswith("/tasks/plan_employees")
    assert f"::group::{failing} phase 2" in caplog.text and f"::group::{mate} phase 4" in caplog.text


def test_more_employees_with_work_than_airflow_maps_run_in_bounded_units(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str
) -> None:
    """1,100 employees with work (a dry run plans every appointment as new): more than Airflow expands
    a task over (core.max_map_length, 1,024). The run expands 8 units and succeeds; every employee
    went through all four phases, in exactly one unit, and nothing was written anywhere."""
    from airflow.configuration import conf
    from airflow.sdk import DagRunState

    from include.hub.db import connect

    assert conf.getint("core", "max_map_length") == 1024
    seed_firm(advoware_url, employees=1101, per_employee=1)  # the last one inactive: 1,100 active
    run = _run(dry_run=True)
    assert run.state == DagRunState.SUCCESS
    tis = [ti for ti in run.get_task_instances() if ti.task_id.startswith("employee_sync.")]
    assert len(tis) == 4 * 8 and {ti.state for ti in tis} == {"success"}
    labels = sorted({ti.rendered_map_index for ti in tis})
    assert len(labels) == 8 and all(label.endswith(("(137 employees)", "(138 employees)")) for label in labels)
    with connect(hub) as conn:
        rows = conn.execute(
            "SELECT employee, status, counts FROM sync_runs WHERE run_id = %s", (run.run_id,)
        ).fetchall()
    assert len(rows) == 1100
    assert {r["status"] for r in rows} == {"dry_run"} and {r["counts"]["phases_done"] for r in rows} == {4}
    by_unit = Counter(r["counts"]["unit"] for r in rows)
    assert sorted(by_unit) == list(range(8)) and set(by_unit.values()) == {137, 138}
    assert (total_writes(advoware_url), total_writes(google_url)) == (0, 0)


def test_a_run_for_some_employees_syncs_only_them_in_its_units(
    airflow_db: None, conns: dict, advoware_url: str, google_url: str, hub: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The `employees` param, with units shared (one unit at most): only the named employees are
    planned and synced, in one unit of the two; the others are not touched."""
    from airflow.sdk import DagRunState

    from include.hub.db import connect

    monkeypatch.setenv("SYNC_MAX_UNITS", "1")
    seed_firm(advoware_url, employees=4)
    everyone = sorted(m["kuerzel"] for m in advoware_state(advoware_url)["mitarbeiter"])
    chosen = [everyone[0], everyone[2]]
    run = _run(employees=[c.lower() for c in chosen])  # Kürzel in any case
    assert run.state == DagRunState.SUCCESS
    assert {ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id.startswith("employee_sync.")} == {
        f"{chosen[0]} … {chosen[1]} (2 employees)"
    }
    with connect(hub) as conn:
        synced = [
            r["employee"]
            for r in conn.execute(
                "SELECT employee FROM sync_runs WHERE run_id = %s AND status = 'success' ORDER BY employee",
                (run.run_id,),
            ).fetchall()
        ]
    assert synced == chosen and sorted(calendar_ids(hub)) == chosen
    for employee in chosen:
        assert sorted(marker_of(e)[1] for e in calendar_events(google_url, calendar_ids(hub)[employee])) == sorted(
            t["frNr"] for t in termine(advoware_url, employee)
        )
