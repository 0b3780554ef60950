"""One phase task of one unit, as the DAG's mapped group `employee_sync` runs it.

The group is the four phases and nothing else (a task instance costs a process, so there is no
separate prepare or finalize task): phase 1 takes the plans that plan_employees made (or, for an
employee whose planning failed or was given up there, plans now, so the task's retries are the
planning's retries); phase 4, once its items are applied, finalises each employee's run (saves the
Google sync token, closes the run row).

A unit holds one employee or several (units.py). The task works through them one after the other,
each in a log group named by the employee. Each employee's progress is in its run row
(`counts.phases_done`): phase N works for an employee whose phases before N are done; it skips one
that an earlier try of this task already did (so a retry redoes only the employees that failed) and
one that failed an earlier phase (its sync token stays, so the next run reads the same changes
again). An employee's failure is recorded in its run row and the others go on; the task fails at
its end (`UnitPhaseFailed`) and Airflow retries it with backoff. Phases 2-4 start when the phase
before has ended, failed or not (trigger rule all_done), so the unit's other employees go on. The
last phase fails, without a retry, when an employee of its unit did not get through
(`UnitIncomplete`): the run shows the failure, and each employee's outcome is in the status view.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from include.calendar_sync.context import (
    NothingToDo,
    PhaseFailed,
    SyncContext,
    SyncStopped,
    UnitIncomplete,
    UnitPhaseFailed,
)
from include.calendar_sync.executor import reason_of, run_phase
from include.calendar_sync.finalize import finalize
from include.calendar_sync.lease import employee_lease
from include.calendar_sync.planning import ensure_plan
from include.calendar_sync.prepare import RunParams
from include.calendar_sync.units import employees_of
from include.hub import runs

log = logging.getLogger(__name__)

LAST_PHASE = 4
MAX_MESSAGE = 2000  # a failure's message names employees and reasons; the log keeps the rest


def employee_phase(
    ctx: SyncContext, work: dict[str, Any], number: int, run_id: str, params: RunParams
) -> dict[str, Any]:
    """Apply phase `number` of one employee's plan; returns the phase summary (ids and counts). Holds
    the employee's lease meanwhile (lease.py): a targeted run working on them is waited for a while,
    then the employee fails this phase (EmployeeLeased) and the task's retry tries again."""
    employee = str(work["employee"])
    with employee_lease(
        ctx.hub,
        employee,
        f"{run_id}/phase{number}",
        ctx.settings.sync.lease_ttl_s,
        wait_s=ctx.settings.push.lease_wait_s,
    ):
        plan_id = ensure_plan(ctx, work, run_id, params)
        summary = run_phase(ctx, plan_id, number)
        if number == LAST_PHASE:
            summary["finalized"] = finalize(ctx, plan_id)
    return summary


def unit_phase(
    unit: dict[str, Any],
    number: int,
    run_id: str,
    params: RunParams,
    context: Callable[[], SyncContext],
    after_employee: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Phase `number` for every employee of `unit` that is due for it; `after_employee` gets each
    employee's phase summary (the DAG mails parked items from it). Returns the unit's outcomes."""
    ctx = context()
    try:
        return _unit_phase(ctx, unit, number, run_id, params, after_employee)
    finally:
        ctx.close()


def _unit_phase(
    ctx: SyncContext,
    unit: dict[str, Any],
    number: int,
    run_id: str,
    params: RunParams,
    after_employee: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    employees = employees_of(unit)
    with ctx.hub.transaction() as conn:
        states = runs.phase_states(conn, run_id, employees)
    log.info("unit %s, phase %d: %d employee(s): %s", unit["label"], number, len(employees), ", ".join(employees))
    outcomes: dict[str, str] = {}
    failures: dict[str, str] = {}
    stopped: set[str] = set()
    totals: Counter[str] = Counter()
    for work in unit["employees"]:
        employee = str(work["employee"])
        done = states.get(employee, {}).get("phases_done", 0)
        if done >= number:
            outcomes[employee] = "already done"  # by an earlier try of this task
            continue
        if done < number - 1:
            outcomes[employee] = "blocked"
            log.info("%s: phase %d not run: phase %d failed in this run", employee, number, done + 1)
            continue
        log.info("::group::%s phase %d", employee, number)
        try:
            summary = employee_phase(ctx, work, number, run_id, params)
            with ctx.hub.transaction() as conn:
                runs.add_run_counts(conn, run_id, employee, {"phases_done": number, "unit": unit["index"]})
            outcomes[employee] = "done"
            totals.update(summary.get("counts") or {})
            if after_employee is not None:
                after_employee(summary)
        except Exception as exc:  # the employee's failure: recorded, and the unit goes on
            own = isinstance(exc, SyncStopped | PhaseFailed)  # these name ids only and are recorded
            failures[employee] = str(exc) if own else reason_of(exc)
            if isinstance(exc, SyncStopped):
                stopped.add(employee)
            with ctx.hub.transaction() as conn:
                if not own:
                    runs.fail_run(conn, run_id, employee, f"phase {number}: {failures[employee]}")
                runs.add_run_counts(conn, run_id, employee, {"unit": unit["index"]})
            outcomes[employee] = "failed"
            log.warning("%s: phase %d failed: %s", employee, number, failures[employee])
        finally:
            log.info("::endgroup::")
    tally = Counter(outcomes.values())
    log.info(
        "unit %s, phase %d: %s; items %s",
        unit["label"],
        number,
        ", ".join(f"{k} {v}" for k, v in sorted(tally.items())),
        " ".join(f"{k}={v}" for k, v in sorted(totals.items())) or "none",
    )
    if failures:
        named = "; ".join(f"{e} ({r})" for e, r in failures.items())
        raise UnitPhaseFailed(
            f"phase {number}: {len(failures)} of {len(employees)} employee(s) failed: {named}"[:MAX_MESSAGE],
            failures,
            stopped,
        )
    blocked = [e for e, o in outcomes.items() if o == "blocked"]
    if blocked and number == LAST_PHASE:
        raise UnitIncomplete(f"not synced in this run (an earlier phase failed): {', '.join(blocked)}"[:MAX_MESSAGE])
    if blocked and len(blocked) == len(employees):
        raise NothingToDo(f"phase {number}: every employee of the unit failed an earlier phase")
    return {"unit": unit["label"], "phase": number, "outcomes": dict(tally), "counts": dict(totals)}
