"""The party alerts against a local SMTP server, the real Redis (incident state) and the real hub:
one mail when a condition starts, none while it lasts, one again after it was over; ids only."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from include.airflow_provider.notifiers.alerts import check_party_dead_letters, check_party_queue, send
from include.alerts import Incidents, calendar_failed, parked
from include.hub import dead_letters
from include.hub.db import connect
from tests.party_helpers import make_queue


@pytest.fixture
def incidents(redis_url: str) -> Incidents:
    return Incidents(redis.Redis.from_url(redis_url))


def test_an_old_queue_is_one_mail_while_it_lasts(
    redis_url: str, incidents: Incidents, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_PARTY_QUEUE_AGE_S", "600")
    queue = make_queue(redis_url)
    queue.enqueue(["6650old000000001"], "update", now=time.time() - 900)  # waiting for 15 minutes
    check_party_queue(queue.stats(), incidents)
    check_party_queue(queue.stats(), incidents)  # the next sweep: the same incident
    assert len(smtp_sink.messages) == 1
    assert "oldest item waits 15 min" in smtp_sink.messages[0]["Subject"]
    assert "6650old000000001" not in smtp_sink.bodies()[0]  # counts, not ids of parties

    (claimed,) = queue.claim(10)
    queue.ack(claimed)
    check_party_queue(queue.stats(), incidents)  # drained: the incident is over
    queue.enqueue(["6650old000000002"], "create", now=time.time() - 700)
    check_party_queue(queue.stats(), incidents)
    assert len(smtp_sink.messages) == 2


def test_young_work_is_no_incident(redis_url: str, incidents: Incidents, smtp_sink: Any) -> None:
    queue = make_queue(redis_url)
    queue.enqueue(["6650new000000001"], "create")
    check_party_queue(queue.stats(), incidents)
    assert smtp_sink.messages == [] and not incidents.r.exists(incidents.prefix + "party_queue_age")


def test_party_dead_letters_past_the_threshold_are_one_mail(
    hub: str, incidents: Incidents, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERT_PARTY_DEAD_LETTERS", "3")

    def check_dead_letters() -> None:  # what a drain does after its run: count, then decide
        with connect(hub) as conn:
            count = dead_letters.count_open(conn, exclude_source=dead_letters.CALENDAR_SOURCE)
        check_party_dead_letters(count, incidents)

    with connect(hub) as conn:
        for i in range(2):
            dead_letters.add(conn, source="beteiligte_sync", reason="Advoware 422", entity_id=f"6650dl{i}")
        for i in range(5):  # parked calendar items are not party dead letters
            dead_letters.add(conn, source=dead_letters.CALENDAR_SOURCE, reason="x", entity_id=f"AB:{i}")
    check_dead_letters()
    assert smtp_sink.messages == []
    with connect(hub) as conn:
        dead_letters.add(conn, source="webhook", reason="no valid id", entity_id=None)
    check_dead_letters()
    check_dead_letters()
    assert len(smtp_sink.messages) == 1 and "3 open party dead letters" in smtp_sink.messages[0]["Subject"]


def test_without_recipients_an_alert_is_logged_not_mailed(
    smtp_sink: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ALERT_EMAIL_TO", "")
    assert (
        send(calendar_failed({"AB": "SyncStopped"}, "run-1", "employee_sync.phase_1_new_advoware", None, stopped=True))
        is False
    )
    assert smtp_sink.messages == [] and "ALERT safety_stop" in caplog.text


def test_alert_texts_name_ids_only() -> None:
    alert = parked(
        "AB",
        "run-7",
        4,
        [{"kind": "update_advoware", "frnr": 4711, "google_event_id": "g1", "reason": "AdvowareRequestError 422"}],
    )
    assert "frNr=4711 event=g1" in alert.text() and "run-7, phase 4" in alert.text()


def test_a_unit_phase_failing_mails_once_naming_only_the_employees_with_a_new_incident(
    hub: str, smtp_sink: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """A phase task of a unit of four fails after its retries: AB was failing in its previous run too
    (its incident was mailed then), CD fails anew, EF stopped for safety, GH got through. One mail names
    CD, one (a safety stop) EF; the unit's last phase, failing for them again, mails nothing; a task
    that broke as a whole names the unit's employees."""
    from types import SimpleNamespace

    import psycopg
    from airflow.sdk.exceptions import AirflowFailException

    from include import airflow_env
    from include.airflow_provider.notifiers.alerts import on_calendar_failure
    from include.calendar_sync.context import UnitIncomplete, UnitPhaseFailed
    from include.settings import PostgresSettings, Settings

    info = psycopg.conninfo.conninfo_to_dict(hub)
    env = airflow_env.connections(
        Settings(
            postgres=PostgresSettings(host=info["host"], port=int(info["port"]), db=info["dbname"], user=info["user"])
        ),
        root=tmp_path,
    )
    monkeypatch.setenv("AIRFLOW_CONN_SYNC_HUB_DEFAULT", env["AIRFLOW_CONN_SYNC_HUB_DEFAULT"])
    with connect(hub) as conn:
        conn.execute("""INSERT INTO sync_runs (run_id, kind, employee, status, counts, started_at) VALUES
            ('run-0', 'calendar', 'AB', 'failed', '{}', now() - interval '15 minutes'),
            ('run-0', 'calendar', 'CD', 'success', '{}', now() - interval '15 minutes'),
            ('run-1', 'calendar', 'AB', 'failed', '{}', now()), ('run-1', 'calendar', 'CD', 'failed', '{}', now()),
            ('run-1', 'calendar', 'EF', 'stopped', '{}', now()), ('run-1', 'calendar', 'GH', 'success', '{}', now())""")
    unit = {
        "index": 0,
        "label": "AB … GH (4 employees)",
        "employees": [{"employee": e, "plan_id": None, "planning_error": None} for e in ("AB", "CD", "EF", "GH")],
    }

    def fail(task_id: str, exc: BaseException) -> None:
        ti = SimpleNamespace(
            map_index=0,
            task_id=task_id,
            rendered_map_index=unit["label"],
            log_url=None,
            task=SimpleNamespace(op_kwargs={"unit": unit}),
        )
        on_calendar_failure({"ti": ti, "run_id": "run-1", "exception": exc})

    fail(
        "employee_sync.phase_2_new_google",
        UnitPhaseFailed(
            "phase 2: 3 of 4 employee(s) failed",
            {
                "AB": "AdvowareRequestError 503",
                "CD": "AdvowareRequestError 503",
                "EF": "sync of EF stopped: too many deletions",
            },
            {"EF"},
        ),
    )
    subjects = sorted(m["Subject"] for m in smtp_sink.messages)
    assert subjects == [
        "[kanzlei-sync] calendar sync of CD: failed after its retries",
        "[kanzlei-sync] calendar sync of EF: safety stop (deletions withheld)",
    ]
    assert all("AB" not in body and "GH" not in body for body in smtp_sink.bodies())

    try:
        raise UnitIncomplete("not synced in this run (an earlier phase failed): AB, CD, EF")
    except UnitIncomplete as cause:
        last = AirflowFailException(str(cause))
        last.__cause__ = cause
    fail("employee_sync.phase_4_updates", last)
    assert len(smtp_sink.messages) == 2  # reported by the phase that failed

    fail("employee_sync.phase_3_deletions", RuntimeError("the hub went away"))
    crash = smtp_sink.messages[-1]
    assert len(smtp_sink.messages) == 3 and crash["Subject"].startswith("[kanzlei-sync] calendar sync of 3 employees")
    assert "Employee: EF (RuntimeError)" in smtp_sink.bodies()[-1] and "Employee: AB" not in smtp_sink.bodies()[-1]
