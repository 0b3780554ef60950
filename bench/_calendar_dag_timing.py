"""Helper of bench/calendar_sync.py, run in a child process with its own AIRFLOW_HOME and dags folder:
`dag.test()` of the real `advoware_calendar_sync` DAG (a no-op run: the bench synced everything
before, so it is the planning task alone) next to `calendar_sync_empty_shape`, the shape of a run in
which every employee has work (the planning task and the four phases per employee) doing nothing.

    python bench/_calendar_dag_timing.py <dags folder> <employees as JSON list>

Prints one JSON line: {"dag_noop_wall_s", "empty_dag_wall_s", states and task counts}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

EMPTY_DAG = '''"""Same shape as advoware_calendar_sync (plan -> mapped group of the four phases); does nothing."""
from datetime import UTC, datetime

from airflow.sdk import dag, task, task_group

EMPLOYEES = {employees!r}


@dag(dag_id="calendar_sync_empty_shape", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC),
     catchup=False, max_active_runs=1)
def calendar_sync_empty_shape():
    @task
    def plan_employees():
        return [{{"employee": e}} for e in EMPLOYEES]

    @task_group(group_id="employee_sync")
    def employee_sync(work):
        @task
        def phase_1_new_advoware(work):
            return {{}}

        @task
        def phase_2_new_google(work):
            return {{}}

        @task
        def phase_3_deletions(work):
            return {{}}

        @task
        def phase_4_updates(work):
            return {{}}

        phase_1_new_advoware(work) >> phase_2_new_google(work) >> phase_3_deletions(work) >> phase_4_updates(work)

    employee_sync.expand(work=plan_employees())


calendar_sync_empty_shape()
'''


def write_empty_dag(folder: Path, employees: list[str]) -> Path:
    path = folder / "calendar_sync_empty_shape.py"
    path.write_text(EMPTY_DAG.format(employees=employees))
    return path


def _timed(folder: Path, dag_id: str) -> tuple[float, str, int]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder / f"{dag_id}.py"), safe_mode=False)
    if bag.import_errors:
        raise RuntimeError(f"{dag_id}: {bag.import_errors}")
    dag = bag.dags[dag_id]
    started = time.monotonic()
    run = dag.test()
    wall = time.monotonic() - started
    return wall, str(run.state), len(run.get_task_instances())


def main(argv: list[str]) -> int:
    folder, employees = Path(argv[0]), json.loads(argv[1])
    write_empty_dag(folder, employees)
    from airflow.utils import db

    db.initdb()
    # warm-up: the first dag.test() of a process pays Airflow's one-time imports and caches
    _timed(folder, "calendar_sync_empty_shape")
    results = {}
    for dag_id, key in (("calendar_sync_empty_shape", "empty_dag"), ("advoware_calendar_sync", "dag_noop")):
        wall, state, tis = _timed(folder, dag_id)
        results.update({f"{key}_wall_s": round(wall, 2), f"{key}_state": state, f"{key}_task_instances": tis})
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
