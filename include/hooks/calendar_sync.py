"""What the calendar DAG's tasks need, built from Airflow connections: a `SyncContext`, and a unit's
phase as an Airflow task (its outcome in Airflow's terms).

Connections: `advoware_default`, `google_calendar_default`, `sync_hub_default`, `redis_default`.
The DAG file imports nothing of this at parse time; each task body calls in here.
"""

from __future__ import annotations

import functools
from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.calendar_sync.context import NothingToDo, SyncContext, UnitIncomplete
from include.calendar_sync.phases import unit_phase
from include.calendar_sync.prepare import RunParams
from include.hooks.advoware import AdvowareHook
from include.hooks.alerts import after_phase, on_channel_failure, on_channel_recovered, send
from include.hooks.google_calendar import GoogleCalendarSyncHook
from include.hooks.hub import hub_dsn
from include.hooks.redis_conn import redis_url
from include.settings import get_settings


def sync_context() -> SyncContext:
    """Clients for one task, built when first used: Advoware and Google from their connections,
    sharing the Redis of `redis_default` (token cache, rate limiter); the hub's DSN from
    `sync_hub_default`. A task that writes nothing reads only the hub connection."""
    shared_redis = functools.cache(redis_url)  # one connection look-up for both clients
    ctx = SyncContext.lazy(
        hub_dsn(),
        lambda: AdvowareHook(redis_url=shared_redis()).get_conn(),
        lambda: GoogleCalendarSyncHook().get_client(redis_url=shared_redis()),
        get_settings(),
    )
    ctx.notify = send  # a repaired calendar: one mail (include/hooks/alerts.py)
    # a Google watch channel not renewed: one mail per incident, closed when one opens again
    ctx.on_channel_failure, ctx.on_channel_recovered = on_channel_failure, on_channel_recovered
    return ctx


def run_unit_phase(unit: dict[str, Any], number: int, run_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Phase `number` of a work unit (include/calendar_sync/phases.py). Employees that failed make the
    task fail (retried with backoff); a unit with nobody due for this phase is skipped; the last
    phase of a unit that an employee did not get through fails without a retry (it cannot help)."""
    try:
        return unit_phase(
            unit,
            number,
            run_id,
            RunParams.from_mapping(params),
            sync_context,
            after_employee=lambda summary: after_phase(summary, run_id),
        )
    except NothingToDo as exc:
        raise AirflowSkipException(str(exc)) from exc
    except UnitIncomplete as exc:
        raise AirflowFailException(str(exc)) from exc
