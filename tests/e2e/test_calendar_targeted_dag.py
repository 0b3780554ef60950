"""The `advoware_calendar_sync_employee` DAG under `dag.test()` against the sandboxes, the real hub and
Redis: its shape, and a run for one employee that syncs that employee alone, its task named by the
Kürzel. (The lease and the collision with the scheduled run: tests/integration/test_calendar_targeted.py.)"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from include.calendar_engine.marker import marker_of
from include.dag_ids import CALENDAR_EMPLOYEE_SYNC_DAG
from tests.calendar_helpers import calendar_events, calendar_ids, seed_firm, termine
from tests.e2e.test_calendar_dag import _run as run_firm_dag
from tests.e2e.test_calendar_dag import airflow_db, conns  # noqa: F401  (fixtures)

os.environ["CALENDAR_SYNC_RETRY_DELAY_S"] = "0"
DAGS = Path(__file__).resolve().parents[2] / "dags"
pytestmark = pytest.mark.timeout(300)


def _dag():  # -> airflow.sdk.DAG
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{CALENDAR_EMPLOYEE_SYNC_DAG}.py"), safe_mode=False)
    assert bag.import_errors == {}
    return bag.dags[CALENDAR_EMPLOYEE_SYNC_DAG]


def test_dag_shape() -> None:
    dag = _dag()
    assert type(dag.timetable).__name__ == "NullTimetable"  # started by the gateway, never by a schedule
    assert dag.max_active_runs > 1  # targeted runs of several employees at once
    assert set(dag.params) == {"employee", "full_content"}
    assert dag.task_ids == ["sync_employee"]
    task = dag.get_task("sync_employee")
    assert task.map_index_template == "{{ employee }}" and task.retries == 3
    assert dag.doc_md and CALENDAR_EMPLOYEE_SYNC_DAG in dag.doc_md


def test_a_run_syncs_the_one_employee_and_names_its_task_by_them(
    airflow_db: None,  # noqa: F811
    conns: dict[str, Any],  # noqa: F811
    advoware_url: str,
    google_url: str,
    hub: str,
) -> None:
    from airflow.sdk import DagRunState

    from include.advoware.client import AdvowareClient

    seed_firm(advoware_url)
    assert run_firm_dag().state == DagRunState.SUCCESS  # the firm's first run provisions the calendars
    everyone = sorted(calendar_ids(hub))
    chosen, other = everyone[0], everyone[1]
    day = str(termine(advoware_url, chosen)[0]["datum"])[:10]
    advoware = AdvowareClient(conns["settings"].advoware)
    made: dict[str, int] = {}
    try:
        for employee, text in ((chosen, "Gezielt"), (other, "Wartet")):
            made[employee] = advoware.create_termin(
                {
                    "kuerzel": employee,
                    "anwalt": employee,
                    "text": text,
                    "notiz": "",
                    "ort": "",
                    "privat": 0,
                    "abwesenheit": 0,
                    "datum": f"{day}T08:00:00",
                    "uhrzeitVon": "08:00:00",
                    "datumBis": f"{day}T08:30:00",
                    "uhrzeitBis": "08:30:00",
                }
            )["frNr"]
    finally:
        advoware.close()

    run = _dag().test(run_conf={"employee": chosen.lower()})
    assert run.state == DagRunState.SUCCESS
    [ti] = run.get_task_instances()
    assert (ti.task_id, ti.rendered_map_index, ti.state) == ("sync_employee", chosen.lower(), "success")
    cals = calendar_ids(hub)
    assert made[chosen] in {marker_of(e)[1] for e in calendar_events(google_url, cals[chosen])}
    assert made[other] not in {marker_of(e)[1] for e in calendar_events(google_url, cals[other])}
