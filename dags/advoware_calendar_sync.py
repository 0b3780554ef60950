"""
### advoware_calendar_sync: Advoware appointments ⇄ one Google calendar per employee

Every 15 minutes (env `CALENDAR_SYNC_SCHEDULE`, a cron expression), and on demand from the
gateway (`POST /advoware/calendar/sync`) or the UI.

1. **list_employees**: the active Advoware employees (Mitarbeiter `aktiv`). A new employee gets a
   calendar on their first run; one who left stops being synced and their calendar stays as it is.
2. One **employee_sync** group per employee (mapped; one employee's failure leaves the others
   running):
   - **prepare**: reads Advoware (window: 30 days back, 365 ahead) and Google (incremental with the
     stored sync token, or the full window), plans, and stores the plan in the hub (`sync_plans`).
     A safety stop (a side suddenly empty, too many deletions) fails here loudly, nothing written.
   - **phase_1_new_advoware**: adoptions of existing Google events, new Advoware appointments → Google.
   - **phase_2_new_google**: new Google events → Advoware (skipped under write protection).
   - **phase_3_deletions**: deletions on either side (each confirmed against the other side first).
   - **phase_4_updates**: changed content; conflicts by `SYNC_CONFLICT_POLICY` (advoware_wins).
   - **finalize**: saves the Google sync token and closes the run log (`sync_runs`).

Every item's outcome is in the hub (`calendar_links`: status, attempts, last error); a phase with
failed items fails at its end and is retried (3×, exponential backoff); a crash anywhere creates
no duplicate on the next try. An item that has failed `SYNC_CALENDAR_MAX_ATTEMPTS` times (12 ≈ three
runs with their retries) is **parked**: a dead letter (source `calendar_sync`, ids only), counted as
`parked`, no longer failing its phase, so the employee's later phases and finalize still run; it is
left out of the plans until replayed (`kanzlei-sync dead-letters replay ID`), and the next run then
reads the window in full and tries it again. Logs carry counts and ids, never appointment texts.

**Params**: `full_content` (list the whole Google window instead of the changes), `employees`
(a subset of Kürzel), `dry_run` (plan and log only), `force_deletions` (override the safety stop),
`recover` (rebuild the employee's links from Google's markers first, for a lost hub).

**Pools**: `google_calendar_api` (prepare, phases 1, 3, 4), `advoware_api` (list_employees, phase 2).
**Connections**: `advoware_default`, `google_calendar_default`, `sync_hub_default`, `redis_default`.
Logic: `include/calendar_sync/`, engine `include/sync/`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from airflow.providers.redis.hooks.redis import RedisHook
from airflow.sdk import Param, dag, get_current_context, task, task_group

from include.calendar_sync.context import SyncContext
from include.hooks.advoware import AdvowareHook
from include.hooks.google_calendar import GoogleCalendarSyncHook
from include.hooks.hub import HubHook
from include.settings import GoogleSettings, Settings

DAG_ID = "advoware_calendar_sync"
SCHEDULE = os.environ.get("CALENDAR_SYNC_SCHEDULE", "*/15 * * * *")
RETRY_DELAY_S = float(os.environ.get("CALENDAR_SYNC_RETRY_DELAY_S", "30"))
GOOGLE_POOL, ADVOWARE_POOL = "google_calendar_api", "advoware_api"


def _redis_url() -> str:
    conn = RedisHook.get_connection("redis_default")
    auth = f":{quote(conn.password, safe='')}@" if conn.password else ""
    db = (conn.extra_dejson or {}).get("db", 0)
    return f"redis://{auth}{conn.host or '127.0.0.1'}:{conn.port or 6379}/{db}"


def _ctx() -> SyncContext:
    from include.google_calendar.ratelimit import Backoff

    redis_url = _redis_url()
    google = GoogleCalendarSyncHook().get_client(
        redis_url=redis_url, backoff=Backoff(max_retries=GoogleSettings().max_retries))
    return SyncContext(HubHook().dsn(), AdvowareHook(redis_url=redis_url).get_conn(), google, Settings())


def _label(employee: str) -> None:
    get_current_context()["employee"] = employee  # type: ignore[typeddict-unknown-key]  # map index name


@dag(
    dag_id=DAG_ID,
    schedule=SCHEDULE,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["advoware", "google-calendar"],
    params={
        "full_content": Param(False, type="boolean", description="list the whole Google window"),
        "employees": Param([], type="array", items={"type": "string"}, description="only these Kürzel"),
        "dry_run": Param(False, type="boolean", description="plan and log only, write nothing"),
        "force_deletions": Param(False, type="boolean", description="override the deletion safety stop"),
        "recover": Param(False, type="boolean", description="rebuild links from Google's markers first"),
    },
    default_args={
        "retries": 3,
        "retry_delay": timedelta(seconds=RETRY_DELAY_S),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=30),
    },
)
def advoware_calendar_sync() -> None:
    @task(pool=ADVOWARE_POOL)
    def list_employees() -> list[str]:
        from include.calendar_sync.employees import active_employees

        ctx = _ctx()
        try:
            return active_employees(ctx.advoware, ctx.hub_dsn, get_current_context()["params"].get("employees"))
        finally:
            ctx.close()

    def run_phase(prep: dict[str, Any], number: int) -> dict[str, Any]:
        from include.calendar_sync.executor import run_phase as execute

        _label(prep["employee"])
        ctx = _ctx()
        try:
            return execute(ctx, prep["plan_id"], number)
        finally:
            ctx.close()

    @task_group(group_id="employee_sync")
    def employee_sync(employee: str) -> None:
        @task(pool=GOOGLE_POOL, map_index_template="{{ employee }}")
        def prepare(employee: str) -> dict[str, Any]:
            from include.calendar_sync.prepare import RunParams
            from include.calendar_sync.prepare import prepare as plan_employee

            _label(employee)
            context = get_current_context()
            ctx = _ctx()
            try:
                return plan_employee(ctx, context["run_id"], employee, RunParams.from_mapping(context["params"]))
            finally:
                ctx.close()

        @task(pool=GOOGLE_POOL, map_index_template="{{ employee }}")
        def phase_1_new_advoware(prep: dict[str, Any]) -> dict[str, Any]:
            return run_phase(prep, 1)

        @task(pool=ADVOWARE_POOL, map_index_template="{{ employee }}")
        def phase_2_new_google(prep: dict[str, Any]) -> dict[str, Any]:
            return run_phase(prep, 2)

        @task(pool=GOOGLE_POOL, map_index_template="{{ employee }}")
        def phase_3_deletions(prep: dict[str, Any]) -> dict[str, Any]:
            return run_phase(prep, 3)

        @task(pool=GOOGLE_POOL, map_index_template="{{ employee }}")
        def phase_4_updates(prep: dict[str, Any]) -> dict[str, Any]:
            return run_phase(prep, 4)

        @task(map_index_template="{{ employee }}")
        def finalize(prep: dict[str, Any]) -> dict[str, Any]:
            from include.calendar_sync.finalize import finalize as close_run

            _label(prep["employee"])
            ctx = _ctx()
            try:
                return close_run(ctx, prep["plan_id"])
            finally:
                ctx.close()

        prep = prepare(employee)
        (phase_1_new_advoware(prep) >> phase_2_new_google(prep) >> phase_3_deletions(prep)
         >> phase_4_updates(prep) >> finalize(prep))

    employee_sync.expand(employee=list_employees())


advoware_calendar_sync()
