"""
### advoware_calendar_sync_employee: one employee's calendar, synced because something changed

Started by the gateway, never by a schedule: when Google notifies a change in the employee's calendar
(`POST /webhooks/google/calendar`) or a write to their appointments passes the gateway's Advoware
proxy (`/api/advoware/Termine`). A burst of changes for one employee becomes one run (the gateway
waits `PUSH_DEBOUNCE_S`, 1.5 s, after the first). The run id names the employee
(`push__<Kürzel>__…`, `proxy__<Kürzel>__…`), and so does its one task's map index.

**sync_employee**: the work of `advoware_calendar_sync` for this one employee in a single task:
read both sides, plan, the four phases, save the sync token (include/calendar_sync/targeted.py).
It runs beside the scheduled run of the firm (that DAG allows one run at a time; this one several):
the two never work on the employee at once. The task holds the employee's lease in the hub
(`employee_sync_leases`, renewed while it works, expiring after `SYNC_LEASE_TTL_S` if the worker
dies); if a run holds it, the task waits up to `PUSH_LEASE_WAIT_S`, then fails and is retried. The
scheduled run skips an employee a targeted run holds (that run syncs them now).

An employee unknown to the hub or inactive is left to the schedule (it provisions and retires). The
echo of the run's own writes (Google notifies them too) starts another run that finds nothing to do
and writes nothing. Failures show here and in the status view; the schedule is the safety net.

**Params**: `employee` (the Kürzel), `full_content` (list the whole Google window).
**Pools**: `google_calendar_api`. The task calls `include/airflow_provider/tasks/calendar_sync.py`;
logic: `include/calendar_sync/targeted.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from include.airflow_provider.dag_defaults import calendar_retry_delay_s, default_args
from include.airflow_provider.deployment.pools import GOOGLE_POOL
from include.dag_ids import CALENDAR_EMPLOYEE_SYNC_DAG

# targeted runs of different employees at once (each holds its own employee's lease)
MAX_ACTIVE_RUNS = 8


@dag(
    dag_id=CALENDAR_EMPLOYEE_SYNC_DAG,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=MAX_ACTIVE_RUNS,
    doc_md=__doc__,
    tags=["advoware", "google-calendar", "push"],
    params={
        "employee": Param("", type=["string", "null"], maxLength=20, description="the employee's Kürzel"),
        "full_content": Param(False, type=["boolean", "null"], description="list the whole Google window"),
    },
    default_args=default_args(
        retry_delay_s=calendar_retry_delay_s(),
        max_retry_delay=timedelta(minutes=5),
        execution_timeout=timedelta(minutes=15),
    ),
)
def advoware_calendar_sync_employee() -> None:
    # mapped over the one employee so the task instance is named by the Kürzel in the UI
    @task(pool=GOOGLE_POOL, map_index_template="{{ employee }}")
    def sync_employee(employee: str) -> dict[str, Any]:
        from include.airflow_provider.tasks.calendar_sync import sync_employee as sync

        return sync(employee)

    sync_employee.expand(employee=["{{ params.employee }}"])


advoware_calendar_sync_employee()
