"""All steps of a sync in one process, in the DAG's order (the demo, the CLI and tests use it).

The DAG runs the same functions as separate tasks; here a failing employee is recorded and the
others go on, as with the DAG's mapped task groups.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from include.calendar_sync.context import SyncContext
from include.calendar_sync.employees import active_employees
from include.calendar_sync.executor import reason_of, run_phase
from include.calendar_sync.finalize import finalize
from include.calendar_sync.prepare import RunParams, prepare

log = logging.getLogger(__name__)

PHASES = (1, 2, 3, 4)


def new_run_id(prefix: str = "local") -> str:
    return f"{prefix}__{uuid.uuid4().hex[:16]}"


def sync_employee(ctx: SyncContext, run_id: str, employee: str, params: RunParams) -> dict[str, Any]:
    prep = prepare(ctx, run_id, employee, params)
    for number in PHASES:
        run_phase(ctx, prep["plan_id"], number)
    return finalize(ctx, prep["plan_id"])


def sync_all(
    ctx: SyncContext,
    params: RunParams | None = None,
    *,
    run_id: str | None = None,
    employees: Iterable[str] | None = None,
) -> tuple[str, dict[str, dict[str, Any]]]:
    """Sync every active employee (or the given ones); returns (run id, result per employee)."""
    params = params or RunParams()
    run_id = run_id or new_run_id()
    results: dict[str, dict[str, Any]] = {}
    for employee in active_employees(ctx.advoware, ctx.hub, employees):
        try:
            results[employee] = sync_employee(ctx, run_id, employee, params)
        except Exception as exc:  # one employee's failure leaves the others running
            log.warning("sync of %s failed: %s", employee, reason_of(exc))
            results[employee] = {"employee": employee, "status": "failed", "error": reason_of(exc)}
    return run_id, results
