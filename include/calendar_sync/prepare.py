"""Step 1 of an employee's sync: read both sides, plan, store the plan in the hub.

Returns only ids and counts (what goes into XCom); the phases load the plan by id. The Google sync
token of this read is stored with the plan and saved by `finalize` only once every phase succeeded,
so a failed run re-reads the same changes next time.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from googleapiclient.errors import HttpError

from include.calendar_sync.context import SyncContext, SyncStopped
from include.calendar_sync.intents import resolve_intents
from include.google_calendar.errors import error_info
from include.google_calendar.provisioning import CalendarProvisioner
from include.google_calendar.reading import CalendarReader, ChangeSet
from include.hub import calendars as hub_calendars
from include.hub import links as store
from include.hub.db import connect
from include.sync.planner import plan_sync
from include.sync.policy import Policy, Window
from include.sync.timeutil import BERLIN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunParams:
    """The DAG's params (also the gateway's and the CLI's options)."""

    full_content: bool = False
    dry_run: bool = False
    force_deletions: bool = False
    recover: bool = False

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> RunParams:
        values = values or {}
        return cls(**{k: bool(values.get(k, False)) for k in asdict(cls())})


def window_of(ctx: SyncContext) -> Window:
    sync = ctx.settings.sync
    return Window.around(ctx.today or date.today(), sync.window_days_back, sync.window_days_ahead)


def google_bounds(window: Window) -> tuple[datetime, datetime]:
    return (datetime.combine(window.start, time(0), BERLIN),
            datetime.combine(window.end + timedelta(days=1), time(0), BERLIN))


def ensure_calendar(ctx: SyncContext, employee: str, *, force: bool = False) -> str:
    """The employee's calendar id; provisioned on the first run (or when it was deleted by hand)."""
    with connect(ctx.hub_dsn) as conn:
        row = hub_calendars.get(conn, employee)
    if row is not None and row.calendar_id and not force:
        return row.calendar_id
    email = row.email if row else None
    if not email:
        raise LookupError(f"employee {employee} has no e-mail address in Advoware: no calendar")
    result = CalendarProvisioner(ctx.google, ctx.hub_dsn).ensure(employee, email)
    return result.calendar_id


def read_google(ctx: SyncContext, employee: str, window: Window, *, full: bool) -> ChangeSet:
    reader = CalendarReader(ctx.google, ctx.hub_dsn)
    tmin, tmax = google_bounds(window)
    try:
        return reader.read(employee, tmin, tmax, force_full=full)
    except HttpError as exc:
        if error_info(exc).status not in (404, 410):
            raise
        # the calendar is gone (deleted by hand): provisioning recreates it and resets the links
        log.warning("calendar of %s not found: provisioning it again", employee)
        ensure_calendar(ctx, employee, force=True)
        return reader.read(employee, tmin, tmax, force_full=True)


def prepare(ctx: SyncContext, run_id: str, employee: str, params: RunParams) -> dict[str, Any]:
    """Plan one employee's sync; returns {"plan_id", "employee", "counts", "dry_run", "stopped"}.

    A dry run writes nothing anywhere, not even a new employee's calendar: without one it plans
    against an empty Google side (everything would be created).
    """
    with connect(ctx.hub_dsn) as conn:
        known = hub_calendars.get(conn, employee)
    provisioned = known is not None and bool(known.calendar_id)
    if not params.dry_run:
        ensure_calendar(ctx, employee)
        provisioned = True
    if params.recover and provisioned and not params.dry_run:
        from include.calendar_sync.recovery import recover

        recover(ctx, employee)
    window = window_of(ctx)
    advoware_items = ctx.advoware.list_termine(employee, window.start, window.end)
    if provisioned:
        changes = read_google(ctx, employee, window, full=params.full_content or params.recover)
    else:
        changes = ChangeSet(employee, "", [], None, "full", "no_token", 0)
    if not params.dry_run:
        resolve_intents(ctx, employee, advoware_items, changes.items)
    policy = Policy.from_settings(ctx.settings, write_protection=ctx.write_protection,
                                  force_deletions=params.force_deletions, dry_run=params.dry_run)
    with connect(ctx.hub_dsn) as conn:
        links = store.load_links(conn, employee)
    plan = plan_sync(links, advoware_items, changes.items, changes.full, policy, window, employee=employee)
    counts = {k: v for k, v in plan.counts().items() if v}
    status = "stopped" if plan.stop_reason else ("dry_run" if params.dry_run else "running")
    with connect(ctx.hub_dsn) as conn:
        plan_id = store.save_plan(conn, run_id, plan, sync_token=changes.next_sync_token)
        store.start_run(conn, run_id, employee, {"plan": counts}, status=status, error=plan.stop_reason)
    log.info("prepare %s: advoware %d items, google %d items (%s, %s); plan %d: %s",
             employee, len(advoware_items), len(changes.items), changes.kind, changes.reason, plan_id,
             " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for report in plan.reports:
        log.info("report %s: %s frNr=%s event=%s %s", employee, report.kind, report.frnr,
                 report.google_event_id, report.detail)
    if plan.stop_reason:
        log.error("STOPPED sync of %s: %s; withheld %s (run with force_deletions to override)",
                  employee, plan.stop_reason, plan.withheld)
        raise SyncStopped(f"sync of {employee} stopped: {plan.stop_reason}")
    return {"plan_id": plan_id, "employee": employee, "counts": counts, "dry_run": params.dry_run,
            "stopped": False}
