"""One phase task of one employee, as the DAG's per-employee group runs it.

The group is the four phases and nothing else (a task instance costs a process, so there is no
separate prepare or finalize task per employee): phase 1 takes the plan that plan_employees made
(or, if that employee's planning failed there, plans now, so the task's retries are the planning's
retries); phase 4, once its items are applied, finalises the employee's run (saves the Google sync
token, closes the run row). A phase that fails after its retries leaves the later phases
upstream-failed and the old sync token in place, so the next run reads the same changes again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from include.calendar_sync.context import SyncContext
from include.calendar_sync.executor import run_phase
from include.calendar_sync.finalize import finalize
from include.calendar_sync.planning import ensure_plan
from include.calendar_sync.prepare import RunParams

LAST_PHASE = 4


def employee_phase(work: dict[str, Any], number: int, run_id: str, params: RunParams,
                   context: Callable[[], SyncContext]) -> dict[str, Any]:
    """Apply phase `number` of the employee's plan; returns the phase summary (XCom: ids and counts)."""
    ctx = context()
    try:
        plan_id = ensure_plan(ctx, work, run_id, params)
        summary = run_phase(ctx, plan_id, number)
        if number == LAST_PHASE:
            summary["finalized"] = finalize(ctx, plan_id)
        return summary
    finally:
        ctx.close()
