"""The first step of a calendar run: plan every active employee in one task, close the ones with
nothing to do, and hand on only the employees whose plan has actions, grouped into work units.

A run that changes nothing then costs one task process, whatever the size of the firm: each
employee's planning is two listings (Advoware's window, Google's changes since the sync token) and
a plan that is empty, so it is finalised right here (sync token saved, run row 'success'). Only the
employees with work go on to the mapped group of the four phases, in units (units.py): one employee
each while few have work, a bounded number of units of many employees when many do, so a run's task
instances stay bounded however many employees have work.

Employees are planned in parallel threads (planning_pool.py: SYNC_PLAN_THREADS, default 8; the work
is waiting on the APIs), within Google's quotas (the client's limiter: per employee and per project).
One employee's failure leaves the others planned: the failing employee is handed on without a plan,
and its unit's first phase task plans it again with the task's retries and backoff (a safety stop
fails there loudly, nothing written). So is an employee whose planning takes longer than
SYNC_PLAN_EMPLOYEE_TIMEOUT_S (120 s): a slow or hung API holds up nobody else. A retried planning
task keeps what its earlier try did in this run: an employee already closed is not planned again,
one already planned keeps its plan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from include.calendar_sync.context import SyncContext
from include.calendar_sync.employees import active_employees
from include.calendar_sync.finalize import finalize
from include.calendar_sync.lease import try_acquire
from include.calendar_sync.planning_pool import Abandoned, plan_in_threads
from include.calendar_sync.prepare import RunParams, prepare
from include.calendar_sync.units import make_units
from include.hub import plans, runs

log = logging.getLogger(__name__)

CLOSED = ("success", "dry_run")  # run row states of an employee finished within the planning task


@dataclass
class Planned:
    """One employee's outcome of the planning step."""

    employee: str
    # "work" (plan with actions), "closed" (nothing to do, finalised), "retry" (failed), "skipped"
    # (another run, a targeted one, holds the employee's lease: it syncs them now)
    outcome: str
    plan_id: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def work_item(self) -> dict[str, Any]:
        """An employee of a work unit (XCom: ids only; the counts are in the run row and the log)."""
        return {"employee": self.employee, "plan_id": self.plan_id, "planning_error": self.error}


def _actions(counts: dict[str, Any]) -> int:
    return sum(int(counts.get(f"phase{n}") or 0) for n in (1, 2, 3, 4))


def plan_one(
    ctx: SyncContext, run_id: str, employee: str, params: RunParams, earlier: dict[str, Any] | None = None
) -> Planned:
    """Plan `employee`; an empty plan is finalised at once. Never raises for the employee's own
    failure: the outcome says "retry" and the employee's first phase task plans again."""
    if earlier is not None:
        if earlier["status"] in CLOSED and earlier["plan_id"] and not _actions(earlier["counts"] or {}):
            return Planned(employee, "closed", earlier["plan_id"])
        if earlier["status"] == "running" and earlier["plan_id"] and _actions(earlier["counts"] or {}):
            counts = {k: v for k, v in (earlier["counts"] or {}).items() if v}
            return Planned(employee, "work", earlier["plan_id"], counts)
    try:
        lease = try_acquire(ctx.hub, employee, f"{run_id}/plan", ctx.settings.sync.lease_ttl_s)
    except Exception as exc:  # the hub: handed on, its phase task plans it (and takes the lease) again
        return Planned(employee, "retry", error=f"lease not taken: {type(exc).__name__}")
    if lease is None:
        log.info("%s skipped: another run is syncing the employee right now", employee)
        return Planned(employee, "skipped")
    try:
        prepared = prepare(ctx, run_id, employee, params)
        if not prepared["actions"]:
            finalize(ctx, prepared["plan_id"])
            return Planned(employee, "closed", prepared["plan_id"])
    except Abandoned:
        raise  # given up for its slowness: the pool has handed it on already
    except Exception as exc:
        from include.calendar_sync.executor import reason_of

        reason = reason_of(exc)
        log.warning("planning %s failed (%s): its own phase task plans it again", employee, reason)
        return Planned(employee, "retry", error=reason)
    finally:
        lease.release()  # the phase tasks take it again for their own work
    return Planned(employee, "work", prepared["plan_id"], prepared["counts"])


def plan_employees(
    ctx: SyncContext, run_id: str, params: RunParams, only: Iterable[str] | None = None
) -> list[dict[str, Any]]:
    """Plan every active employee (or `only` these); returns the work units (units.py) of the
    employees that need the phase tasks: a plan with actions, or a planning failure to retry."""
    employees = active_employees(ctx.advoware, ctx.hub, only)
    if not employees:
        return []
    with ctx.hub.transaction() as conn:  # what an earlier try of this run's planning left
        earlier = runs.calendar_rows_with_plans(conn, run_id)
    sync = ctx.settings.sync
    pool = plan_in_threads(
        employees,
        lambda e: plan_one(ctx, run_id, e, params, earlier.get(e)),
        threads=sync.plan_threads,
        timeout_s=sync.plan_employee_timeout_s,
    )
    results: list[Planned] = []
    for employee in employees:
        outcome = pool.done.get(employee)
        if isinstance(outcome, Planned):
            results.append(outcome)
        elif employee in pool.timed_out:
            results.append(Planned(employee, "retry", error=f"planning took over {sync.plan_employee_timeout_s:.0f} s"))
        elif employee in pool.not_started:
            results.append(Planned(employee, "retry", error="not planned: every planning thread was held"))
        else:  # plan_one raised (it records its own failures): a bug or the hub, retried by the unit
            from include.calendar_sync.executor import reason_of

            reason = reason_of(outcome) if isinstance(outcome, BaseException) else "no outcome"
            results.append(Planned(employee, "retry", error=reason))
    by_outcome: dict[str, list[str]] = {"work": [], "closed": [], "retry": [], "skipped": []}
    for r in results:
        by_outcome[r.outcome].append(r.employee)
    log.info(
        "planned %d employees: %d with work (%s), %d with nothing to do, %d to plan again (%s), "
        "%d skipped (synced by another run right now: %s)",
        len(results),
        len(by_outcome["work"]),
        ", ".join(by_outcome["work"]) or "-",
        len(by_outcome["closed"]),
        len(by_outcome["retry"]),
        ", ".join(by_outcome["retry"]) or "-",
        len(by_outcome["skipped"]),
        ", ".join(by_outcome["skipped"]) or "-",
    )
    keep_channels(ctx, only)
    units = make_units([r.work_item() for r in results if r.outcome in ("work", "retry")], sync.max_units)
    for unit in units:
        log.info("unit %d: %s", unit["index"], unit["label"])
    return units


def keep_channels(ctx: SyncContext, only: Iterable[str] | None = None) -> None:
    """Google watch channels in order (include/calendar_push): one hub transaction on a quiet run, nothing
    with push off; its failures are logged and alerted there, never fail the planning."""
    from include.calendar_push.channels import ChannelKeeper, push_address

    if push_address(ctx.settings) is None:
        return
    try:
        ChannelKeeper(
            ctx.google, ctx.hub, ctx.settings, on_failure=ctx.on_channel_failure, on_recovered=ctx.on_channel_recovered
        ).maintain(only)
    except Exception as exc:  # the hub or a bug: the schedule still syncs; the next run tries again
        log.warning("google channels not maintained: %s", type(exc).__name__)


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
