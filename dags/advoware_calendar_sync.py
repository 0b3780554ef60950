"""
### advoware_calendar_sync: Advoware appointments ⇄ one Google calendar per employee

Every 15 minutes (env `CALENDAR_SYNC_SCHEDULE`, a cron expression), and on demand from the
gateway (`POST /advoware/calendar/sync`) or the UI.

1. **plan_employees**: the active Advoware employees (Mitarbeiter `aktiv`), each planned in this
   one task (8 threads, each employee given up after 120 s and planned again by its unit): Advoware's
   window (30 days back, 365 ahead) and Google's changes (incremental with the stored sync token, or
   the full window) are read and compared, and the plan is stored in the hub (`sync_plans`). An
   employee with **nothing to do is closed right here** (sync token saved, run row `success`), so a
   quiet run is this one task, whatever the size of the firm. A new employee gets a calendar on
   their first run; one who left stops being synced (their calendar stays). With Google push on
   (`GATEWAY_PUBLIC_URL`), the task then keeps each calendar's watch channel: opened when missing,
   renewed before expiry, stopped when the employee left (`include/calendar_push/`).
2. The employees **with work** go on in **units**: up to 8 of them (`SYNC_MAX_UNITS`) one unit each
   (map index: the Kürzel), more in 8 units of neighbouring Kürzel (map index: first … last, count),
   so a run has at most 33 task instances however many employees have work. One **employee_sync**
   group per unit (mapped), the four phases, each a task with its own retries, working through the
   unit's employees one after the other (a log group per employee):
   - **phase_1_new_advoware**: adoptions of existing Google events, new Advoware appointments → Google.
     (An employee whose planning failed in step 1 is planned here again, with this task's retries;
     a safety stop, a side suddenly empty or too many deletions, fails here loudly, nothing written.)
   - **phase_2_new_google**: new Google events → Advoware (skipped under write protection).
   - **phase_3_deletions**: deletions on either side (each confirmed against the other side first).
   - **phase_4_updates**: changed content; conflicts by `SYNC_CONFLICT_POLICY` (advoware_wins); then
     the series exceptions (one occurrence of a series changed in Google: kept and reported, reverted
     under write protection, dropped when the series no longer has that occurrence; README "Series
     exceptions"). Then the employee's run is closed: Google sync token saved, run log (`sync_runs`)
     finished.

   An employee that fails a phase is recorded, the unit's others go on, and the task fails at its end:
   its retry redoes only the employees that failed. Phases 2-4 run once the phase before has ended
   (trigger rule `all_done`) for the employees that got through it; an employee that failed a phase
   goes no further in this run (its sync token stays), and its unit's last phase fails without a
   retry, so the run shows it. Each employee's outcome is in the status view.

Every item's outcome is in the hub (`calendar_links`: status, attempts, last error); a phase with
failed items fails at its end and is retried (3×, exponential backoff), and a retry skips what is
already applied; a crash anywhere creates no duplicate on the next try. An item that has failed
`SYNC_CALENDAR_MAX_ATTEMPTS` times (12 ≈ three runs with their retries) is **parked**: a dead letter
(source `calendar_sync`, ids only), counted as `parked`, no longer failing its phase, so the
employee's later phases and finalize still run; it is left out of the plans until replayed
(`kanzlei-sync dead-letters replay ID`), and the next run then reads the window in full and tries
it again. Logs carry counts and ids, never appointment texts: each write is one line naming the
employee, the action, the frNr and the Google event id.

**One run per employee at a time**: a change in Google (push notification) or a write through the
gateway's proxy syncs its employee at once in `advoware_calendar_sync_employee`, also while this run
goes. Every task that works on an employee holds the employee's lease in the hub (renewed while it
works, expiring after `SYNC_LEASE_TTL_S` if a worker dies): the planning skips an employee a targeted
run is syncing right now (logged as skipped), a phase task waits up to `PUSH_LEASE_WAIT_S` for it.

**Alerts** (e-mail to `ALERT_EMAIL_TO` through the connection `smtp_default`): employees whose sync
fails after its retries or stops for safety (one mail per failed phase task naming them; once per
incident: not again while the employee's previous run failed too; a stop's mail names its two
answers), a planning that fails, items parked, an employee's calendar made again, shared again or put
back on their list in Google (one per repair), an employee's Google watch channel that cannot be
opened or renewed (once per incident).

**Params**: `full_content` (list the whole Google window instead of the changes), `employees`
(a subset of Kürzel), `dry_run` (plan and log only), `recover` (rebuild the employee's links from
Google's markers first, for a lost hub), and the two answers to a safety stop (e.g. a calendar emptied
in Google), one at a time, best with `employees`: `refill_google` (make again in Google what was
deleted there; Advoware keeps everything) or `force_deletions` (confirm the deletions: carry them
across). The status view's buttons and `kanzlei-sync calendar resolve-stop` trigger the same runs.

**Pools**: `google_calendar_api` (phases 1, 3, 4), `advoware_api` (plan_employees, phase 2).
**Connections**: `advoware_default`, `google_calendar_default`, `sync_hub_default`, `redis_default`.
Each task makes one call into `include/airflow_provider/tasks/calendar_sync.py`; logic: `include/calendar_sync/`,
engine `include/calendar_engine/`. Nothing of it is imported when the file is parsed (every task process
parses it): each task imports what it uses.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task, task_group

from include.airflow_provider.dag_defaults import calendar_retry_delay_s, default_args
from include.airflow_provider.deployment.pools import ADVOWARE_POOL, GOOGLE_POOL
from include.dag_ids import CALENDAR_SYNC_DAG

SCHEDULE = os.environ.get("CALENDAR_SYNC_SCHEDULE", "*/15 * * * *")


def _on_failure(context: Any) -> None:
    """After a task's last retry: one alert per incident (include/airflow_provider/notifiers/alerts.py)."""
    from include.airflow_provider.notifiers.alerts import on_calendar_failure

    on_calendar_failure(context)


def _on_planning_success(context: Any) -> None:
    from include.airflow_provider.notifiers.alerts import on_planning_success

    on_planning_success(context)


@dag(
    dag_id=CALENDAR_SYNC_DAG,
    schedule=SCHEDULE,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["advoware", "google-calendar"],
    # Each type admits null: Airflow's trigger form marks a param "required" unless its type includes
    # "null"; every one has a default, and an emptied field (null) means that default.
    params={
        "full_content": Param(False, type=["boolean", "null"], description="list the whole Google window"),
        "employees": Param(
            [],
            type=["array", "null"],
            items={"type": "string"},
            description="only these Kürzel (empty: every active employee)",
        ),
        "dry_run": Param(False, type=["boolean", "null"], description="plan and log only, write nothing"),
        "force_deletions": Param(
            False,
            type=["boolean", "null"],
            description="after a safety stop: confirm the deletions (carry them across)",
        ),
        "refill_google": Param(
            False,
            type=["boolean", "null"],
            description="after a safety stop: make again in Google what was deleted there (Advoware keeps everything)",
        ),
        "recover": Param(False, type=["boolean", "null"], description="rebuild links from Google's markers first"),
    },
    default_args=default_args(
        retry_delay_s=calendar_retry_delay_s(),
        max_retry_delay=timedelta(minutes=10),
        execution_timeout=timedelta(minutes=30),
        on_failure_callback=_on_failure,
    ),
)
def advoware_calendar_sync() -> None:
    @task(pool=ADVOWARE_POOL, on_success_callback=_on_planning_success)
    def plan_employees() -> list[dict[str, Any]]:
        from include.airflow_provider.tasks.calendar_sync import plan_employees as plan

        return plan()

    @task_group(group_id="employee_sync")
    def employee_sync(unit: dict[str, Any]) -> None:
        @task(pool=GOOGLE_POOL, map_index_template="{{ unit }}")
        def phase_1_new_advoware(unit: dict[str, Any]) -> dict[str, Any]:
            from include.airflow_provider.tasks.calendar_sync import phase

            return phase(unit, 1)

        # all_done: the phase runs for the unit's employees that got through the one before
        @task(pool=ADVOWARE_POOL, map_index_template="{{ unit }}", trigger_rule="all_done")
        def phase_2_new_google(unit: dict[str, Any]) -> dict[str, Any]:
            from include.airflow_provider.tasks.calendar_sync import phase

            return phase(unit, 2)

        @task(pool=GOOGLE_POOL, map_index_template="{{ unit }}", trigger_rule="all_done")
        def phase_3_deletions(unit: dict[str, Any]) -> dict[str, Any]:
            from include.airflow_provider.tasks.calendar_sync import phase

            return phase(unit, 3)

        @task(pool=GOOGLE_POOL, map_index_template="{{ unit }}", trigger_rule="all_done")
        def phase_4_updates(unit: dict[str, Any]) -> dict[str, Any]:
            from include.airflow_provider.tasks.calendar_sync import phase

            return phase(unit, 4)

        phase_1_new_advoware(unit) >> phase_2_new_google(unit) >> phase_3_deletions(unit) >> phase_4_updates(unit)

    employee_sync.expand(unit=plan_employees())


advoware_calendar_sync()
