"""What the calendar DAGs' tasks call, one function per task: the clients built from Airflow
connections (a `SyncContext` for the task's life), the run's id and params from the task's context,
the outcome in Airflow's terms.

Connections: `advoware_default`, `google_calendar_default`, `sync_hub_default`, `redis_default`.
The DAG files import nothing of this at parse time; each task body calls in here.
"""

from __future__ import annotations

import functools
from collections.abc import MutableMapping
from typing import Any, cast

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.airflow_provider.hooks.advoware import AdvowareHook
from include.airflow_provider.hooks.google_calendar import GoogleCalendarSyncHook
from include.airflow_provider.hooks.hub import hub_dsn
from include.airflow_provider.hooks.redis import redis_url
from include.airflow_provider.notifiers.alerts import after_phase, on_channel_failure, on_channel_recovered, send
from include.calendar_sync.context import NothingToDo, SyncContext, UnitIncomplete
from include.calendar_sync.phases import unit_phase
from include.calendar_sync.planning import plan_employees as plan
from include.calendar_sync.prepare import RunParams
from include.calendar_sync.targeted import sync_targeted
from include.settings import get_settings


def sync_context() -> SyncContext:
    """Clients for one task, built when first used: Advoware and Google from their connections,
    sharing the Redis of `redis_default` (token cache, rate limiter); the hub's DSN from
    `sync_hub_default`. A task that writes nothing reads only the hub connection."""
    shared_redis = functools.cache(redis_url)  # one connection look-up for both clients
    ctx = SyncContext.lazy(
        hub_dsn(),
        lambda: AdvowareHook(redis_url=shared_redis()).get_conn(),
        lambda: GoogleCalendarSyncHook(redis_url=shared_redis()).get_conn(),
        get_settings(),
    )
    ctx.notify = send  # a repaired calendar: one mail (notifiers/alerts.py)
    # a Google watch channel not renewed: one mail per incident, closed when one opens again
    ctx.on_channel_failure, ctx.on_channel_recovered = on_channel_failure, on_channel_recovered
    return ctx


def _name_map_index(key: str, value: str) -> None:
    """Put the name the task's `map_index_template` renders into its context (rendered after the task)."""
    cast(MutableMapping[str, Any], get_current_context())[key] = value


def plan_employees() -> list[dict[str, Any]]:
    """`plan_employees`: plan every employee of the run, store the plans; the units with work."""
    context = get_current_context()
    params = context["params"]
    ctx = sync_context()
    try:
        return plan(ctx, context["run_id"], RunParams.from_mapping(params), params.get("employees"))
    finally:
        ctx.close()


def phase(unit: dict[str, Any], number: int) -> dict[str, Any]:
    """Phase `number` of a work unit (include/calendar_sync/phases.py). Employees that failed make the
    task fail (retried with backoff); a unit with nobody due for this phase is skipped; the last
    phase of a unit that an employee did not get through fails without a retry (it cannot help)."""
    _name_map_index("unit", unit["label"])
    context = get_current_context()
    run_id = context["run_id"]
    try:
        return unit_phase(
            unit,
            number,
            run_id,
            RunParams.from_mapping(context["params"]),
            sync_context,
            after_employee=lambda summary: after_phase(summary, run_id),
        )
    except NothingToDo as exc:
        raise AirflowSkipException(str(exc)) from exc
    except UnitIncomplete as exc:
        raise AirflowFailException(str(exc)) from exc


def sync_employee(employee: str) -> dict[str, Any]:
    """`advoware_calendar_sync_employee`'s one task: the whole sync of one employee (targeted.py)."""
    _name_map_index("employee", employee)
    if not employee:
        raise ValueError("no employee given (param 'employee')")
    context = get_current_context()
    ctx = sync_context()
    try:
        return sync_targeted(ctx, context["run_id"], employee, RunParams.from_mapping(context["params"]))
    finally:
        ctx.close()
