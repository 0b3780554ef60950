"""A targeted run: one employee synced at once, in one task, because something of theirs changed (a
Google notification or a write through the gateway's Advoware proxy).

It is the scheduled run's work for one employee (prepare, the four phases, finalize: runner.py) in a
single task process, so a change crosses in seconds, while the scheduled run of the firm may be going
(its own DAG, `advoware_calendar_sync_employee`: the firm's DAG allows one run at a time). The two
never work on the employee at once: the targeted run holds the employee's lease (lease.py), waiting
up to PUSH_LEASE_WAIT_S for a run that holds it; then its task fails and Airflow retries it.

An employee the hub does not know as active (never synced, or left) is not synced here: the scheduled
run provisions new employees and retires those who left. The echo of the sync's own writes (Google
notifies those too) finds an empty plan and writes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from include.calendar_sync.context import SyncContext
from include.calendar_sync.lease import employee_lease
from include.calendar_sync.prepare import RunParams
from include.calendar_sync.runner import sync_employee
from include.hub import calendars as hub_calendars

log = logging.getLogger(__name__)


def known_employee(ctx: SyncContext, employee: str) -> str | None:
    """The employee as the hub spells it, if they are active and have a calendar; else None."""
    with ctx.hub.transaction() as conn:
        row = hub_calendars.find_employee(conn, employee)
    if row is None or not row.active or not row.calendar_id:
        return None
    return row.employee


def writes_of(counts: dict[str, Any]) -> dict[str, int]:
    """The writes of a run row's counts (`phase1`..`phase4`: `<side>.<result>`), summed per key."""
    out: dict[str, int] = {}
    for number in (1, 2, 3, 4):
        for key, value in (counts.get(f"phase{number}") or {}).items():
            if value and key.split(".")[-1] in ("created", "updated", "deleted"):
                out[key] = out.get(key, 0) + int(value)
    return out


def sync_targeted(
    ctx: SyncContext, run_id: str, employee: str, params: RunParams | None = None, wait_s: float | None = None
) -> dict[str, Any]:
    """Sync one employee under their lease; returns finalize's summary (or a skip)."""
    params = params or RunParams()
    code = known_employee(ctx, employee)
    if code is None:
        log.info("targeted run: %s is not an active employee with a calendar; left to the schedule", employee)
        return {"employee": employee, "status": "skipped", "reason": "not an active employee with a calendar"}
    wait = ctx.settings.push.lease_wait_s if wait_s is None else wait_s
    with employee_lease(ctx.hub, code, f"{run_id}/targeted", ctx.settings.sync.lease_ttl_s, wait_s=wait):
        result = sync_employee(ctx, run_id, code, params)
    writes = writes_of(result.get("counts") or {})
    log.info(
        "targeted run %s: %s %s, writes %s",
        run_id,
        code,
        result.get("status"),
        " ".join(f"{k}={v}" for k, v in sorted(writes.items())) or "none",
    )
    return result
