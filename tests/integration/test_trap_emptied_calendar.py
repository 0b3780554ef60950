"""Trap: an employee empties the synced calendar in Google.

What a user checks: Advoware keeps every appointment (the run stops, nothing is written anywhere), and
the administrator's one action has two answers: refill Google from Advoware (the same events come
back, nothing changes in Advoware) or confirm the deletions (carried into Advoware). Either way the next
run writes nothing. A few cancellations are not an emptied calendar: they are carried as before. The
command line `kanzlei-sync calendar resolve-stop` gives the answer (triggering the DAG run, or in this
process with --here); the DAG param and the status view's buttons are tested in test_calendar_dag.py and
test_status_plugin.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest

from include import cli
from include.calendar_engine.ids import event_id
from include.calendar_sync.context import SyncContext
from include.calendar_sync.prepare import RunParams
from include.calendar_sync.runner import new_run_id, sync_employee
from include.dag_ids import CALENDAR_SYNC_DAG
from include.hub.db import connect
from include.safety_stop import stop_run, stopped_run
from include.settings import AirflowApiSettings, Settings
from sandbox.runner import ServerThread
from tests.calendar_helpers import calendar_events, calendar_ids, termine, total_writes
from tests.integration.test_airflow_api import PASSWORD, USER, make_fake_airflow
from tests.trap_helpers import EMPLOYEE, advoware_termin, days, person, quiet, seed_employee, sync, trap_ctx

pytestmark = pytest.mark.timeout(180)

TITLES = ("Gerichtstermin", "Mandantengespräch", "Akteneinsicht", "Besprechung")


@pytest.fixture
def ctx(advoware_url: str, google_url: str, redis_url: str, hub: str, tmp_path: Path) -> Iterator[SyncContext]:
    first = datetime.combine(date.today() + days(4), time(9))
    seed_employee(
        advoware_url,
        [
            advoware_termin(t, first + days(i), first + days(i) + (first.replace(hour=10) - first))
            for i, t in enumerate(TITLES)
        ],
    )
    c = trap_ctx(advoware_url, google_url, redis_url, hub, tmp_path)
    assert sync(c)["status"] == "success"
    yield c
    c.close()


def _empty_the_calendar(ctx: SyncContext, google_url: str, keep: int = 0) -> list[str]:
    """The employee deletes the events in Google (all but `keep`), as in the Google Calendar app."""
    google, calendar_id = person(ctx), calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    gone = [e["id"] for e in calendar_events(google_url, calendar_id)][keep:]
    for gid in gone:
        google.events().delete(calendarId=calendar_id, eventId=gid).execute()
    return gone


def _stopped(ctx: SyncContext, advoware_url: str, google_url: str) -> dict[str, Any]:
    before = (total_writes(advoware_url), total_writes(google_url))
    result = sync(ctx)
    assert result["status"] == "failed" and result["error"] == "SyncStopped", result
    assert (total_writes(advoware_url), total_writes(google_url)) == before  # nothing written anywhere
    assert sorted(t["text"] for t in termine(advoware_url, EMPLOYEE)) == sorted(TITLES)
    with connect(ctx.hub_dsn) as conn:
        stopped = stopped_run(conn, EMPLOYEE)
    assert stopped is not None and "calendar emptied" in stopped["error"]
    return stopped


def test_emptied_calendar_stops_then_refill_puts_google_back(
    ctx: SyncContext, advoware_url: str, google_url: str
) -> None:
    gone = _empty_the_calendar(ctx, google_url)
    _stopped(ctx, advoware_url, google_url)
    _stopped(ctx, advoware_url, google_url)  # every later run stops the same way until answered

    advoware_writes = total_writes(advoware_url)
    result = sync_employee(ctx, new_run_id("refill"), EMPLOYEE, RunParams(refill_google=True))
    assert result["status"] == "success"
    calendar_id = calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    events = {e["id"]: e for e in calendar_events(google_url, calendar_id)}
    assert sorted(events) == sorted(gone)  # the same events, restored, none beside them
    assert sorted(e["summary"] for e in events.values()) == sorted(TITLES)
    assert total_writes(advoware_url) == advoware_writes
    assert quiet(ctx, advoware_url, google_url)


def test_emptied_calendar_confirmed_deletes_in_advoware(ctx: SyncContext, advoware_url: str, google_url: str) -> None:
    _empty_the_calendar(ctx, google_url)
    _stopped(ctx, advoware_url, google_url)
    result = sync_employee(ctx, new_run_id("confirm"), EMPLOYEE, RunParams(force_deletions=True))
    assert result["status"] == "success"
    assert termine(advoware_url, EMPLOYEE) == []
    assert quiet(ctx, advoware_url, google_url)


def test_a_few_cancellations_are_carried_as_before(ctx: SyncContext, advoware_url: str, google_url: str) -> None:
    _empty_the_calendar(ctx, google_url, keep=2)
    assert sync(ctx)["status"] == "success"
    assert len(termine(advoware_url, EMPLOYEE)) == 2
    assert quiet(ctx, advoware_url, google_url)


def test_the_two_answers_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="choose one"):
        RunParams.from_mapping({"refill_google": True, "force_deletions": True})


# -- the command line --------------------------------------------------------------------------------
def _with_airflow(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={
            "airflow_api": AirflowApiSettings(_env_file=None, url=url, username=USER, password=PASSWORD, timeout_s=5)
        }
    )


def test_command_line_answers_only_a_stop_and_triggers_one_run(
    ctx: SyncContext, advoware_url: str, google_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["calendar", "resolve-stop", "--employee", EMPLOYEE, "refill"]
    assert cli.main(argv, ctx.settings) == 2  # the last run did not stop: nothing to answer
    assert "nothing to answer" in capsys.readouterr().err
    _empty_the_calendar(ctx, google_url)
    stopped = _stopped(ctx, advoware_url, google_url)

    app = make_fake_airflow(dags=(CALENDAR_SYNC_DAG,))
    with ServerThread(app) as server:
        settings = _with_airflow(ctx.settings, server.url)
        assert cli.main(argv, settings) == 0
        assert cli.main(argv, settings) == 0  # the same stop answered twice: still one run
    expected = stop_run(EMPLOYEE, "refill", stopped["run_id"])
    assert list(app.state.runs) == [(CALENDAR_SYNC_DAG, expected.run_id)]
    assert app.state.runs[(CALENDAR_SYNC_DAG, expected.run_id)]["conf"] == {
        "employees": [EMPLOYEE],
        "full_content": False,
        "refill_google": True,
    }
    out = capsys.readouterr().out
    assert expected.run_id in out and "was started before" in out

    # Airflow is down: the administrator runs it here
    down = _with_airflow(ctx.settings, "http://127.0.0.1:9")
    assert cli.main(argv, down) == 1 and "--here" in capsys.readouterr().err
    assert cli.main([*argv, "--here"], down) == 0
    calendar_id = calendar_ids(ctx.hub_dsn)[EMPLOYEE]
    assert sorted(e["summary"] for e in calendar_events(google_url, calendar_id)) == sorted(TITLES)
    assert event_id(EMPLOYEE, termine(advoware_url, EMPLOYEE)[0]["frNr"]) in {
        e["id"] for e in calendar_events(google_url, calendar_id)
    }
    assert "G+" in capsys.readouterr().out  # the run's table: created in Google
    assert cli.main(argv, down) == 2  # answered: the last run no longer stopped
