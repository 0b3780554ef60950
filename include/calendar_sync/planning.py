"""The first step of a calendar run: plan every active employee in one task, close the ones with
nothing to do, and hand on only the employees whose plan has actions.

A run that changes nothing then costs one task process, whatever the size of the firm: each
employee's planning is two listings (Advoware's window, Google's changes since the sync token) and
a plan that is empty, so it is finalised right here (sync token saved, run row 'success'). Only an
employee with work gets the per-employee task group (the four phases), so the administrator still
sees per employee what was written, with its own retries.

Employees are planned in parallel threads (SYNC_PLAN_THREADS, default 8): the work is waiting on
the two APIs. One employee's failure leaves the others planned: the failing employee is handed on
without a plan, and its own first phase task plans it again with the task's retries and backoff (a
safety stop fails there loudly, nothing written). A retried planning task keeps what its earlier try did
in this run: an employee already closed is not planned again, one already planned keeps its plan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from include.calendar_sync.context import SyncContext
from include.calendar_sync.employees import active_employees
from include.calendar_sync.finalize import finalize
from include.calendar_sync.prepare import RunParams, prepare
from include.hub import plans, runs

log = logging.getLogger(__name__)

CLOSED = ("success", "dry_run")  # run row states of an employee finished within the planning task


@dataclass
class Planned:
    """One employee's outcome of the planning step."""

    employee: str
    outcome: str  # "work" (plan with actions), "closed" (nothing to do, finalised), "retry" (failed)
    plan_id: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def work_item(self) -> dict[str, Any]:
        """What the per-employee task group is expanded over (XCom: ids and counts only)."""
        return {"employee": self.employee, "plan_id": self.plan_id, "counts": self.counts,
                "planning_error": self.error}


def _actions(counts: dict[str, Any]) -> int:
    return sum(int(counts.get(f"phase{n}") or 0) for n in (1, 2, 3, 4))


def plan_one(ctx: SyncContext, run_id: str, employee: str, params: RunParams,
             earlier: dict[str, Any] | None = None) -> Planned:
    """Plan `employee`; an empty plan is finalised at once. Never raises for the employee's own
    failure: the outcome says "retry" and the employee's first phase task plans again."""
    if earlier is not None:
        if earlier["status"] in CLOSED and earlier["plan_id"] and not _actions(earlier["counts"] or {}):
            return Planned(employee, "closed", earlier["plan_id"])
        if earlier["status"] == "running" and earlier["plan_id"] and _actions(earlier["counts"] or {}):
            counts = {k: v for k, v in (earlier["counts"] or {}).items() if v}
            return Planned(employee, "work", earlier["plan_id"], counts)
    try:
        prepared = prepare(ctx, run_id, employee, params)
        if not prepared["actions"]:
            finalize(ctx, prepared["plan_id"])
            return Planned(employee, "closed", prepared["plan_id"])
    except Exception as exc:
        from include.calendar_sync.executor import reason_of

        reason = reason_of(exc)
        log.warning("planning %s failed (%s): its own phase task plans it again", employee, reason)
        return Planned(employee, "retry", error=reason)
    return Planned(employee, "work", prepared["plan_id"], prepared["counts"])


def plan_employees(ctx: SyncContext, run_id: str, params: RunParams,
                   only: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Plan every active employee (or `only` these); returns the work items of the employees that
    need their task group: a plan with actions, or a planning failure to retry."""
    employees = active_employees(ctx.advoware, ctx.hub, only)
    if not employees:
        return []
    with ctx.hub.transaction() as conn:  # what an earlier try of this run's planning left
        earlier = runs.calendar_rows_with_plans(conn, run_id)
    threads = max(1, min(ctx.settings.sync.plan_threads, len(employees)))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="plan") as pool:
        results = list(pool.map(lambda e: plan_one(ctx, run_id, e, params, earlier.get(e)), employees))
    by_outcome: dict[str, list[str]] = {"work": [], "closed": [], "retry": []}
    for r in results:
        by_outcome[r.outcome].append(r.employee)
    log.info("planned %d employees: %d with work (%s), %d with nothing to do, %d to plan again (%s)",
             len(results), len(by_outcome["work"]), ", ".join(by_outcome["work"]) or "-",
             len(by_outcome["closed"]), len(by_outcome["retry"]), ", ".join(by_outcome["retry"]) or "-")
    return [r.work_item() for r in results if r.outcome != "closed"]


def ensure_plan(ctx: SyncContext, work: dict[str, Any], run_id: str, params: RunParams) -> int:
    """The plan of a work item: made by plan_employees, or by an earlier try of this task, or (the
    employee's planning failed in plan_employees) made now; a safety stop raises here, loudly."""
    employee = work["employee"]
    plan_id = work.get("plan_id")
    if plan_id is None:
        with ctx.hub.transaction() as conn:
            plan_id = plans.standing_plan(conn, run_id, employee)
    if plan_id is not None:
        return int(plan_id)
    log.info("planning %s again (plan_employees: %s)", employee, work.get("planning_error"))
    return int(prepare(ctx, run_id, employee, params)["plan_id"])
