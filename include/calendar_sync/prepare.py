"""Step 1 of an employee's sync: read both sides, plan, store the plan in the hub.

Returns only ids and counts (what goes into XCom); the phases load the plan by id. The Google sync
token of this read is stored with the plan and saved by `finalize` only once every phase succeeded,
so a failed run re-reads the same changes next time.

Parked items (dead letters of source 'calendar_sync', see bookkeeping.py) are left out of the planner's
input on both sides and in the links, and reported as "parked" (ids only), until they are replayed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from include.calendar_engine.mapping_advoware import frnr_of
from include.calendar_engine.marker import marker_of
from include.calendar_engine.plan import HubLink, Plan, Report
from include.calendar_engine.planner import plan_sync
from include.calendar_engine.policy import Policy
from include.calendar_sync.calendars import check_calendar, ensure_calendar, read_google, window_of
from include.calendar_sync.context import SyncContext, SyncStopped
from include.calendar_sync.intents import resolve_intents
from include.calendar_sync.planning_pool import uninterrupted
from include.calendar_sync.recovery import recover
from include.calendar_sync.series_reads import complete_series
from include.google_calendar.reading import ChangeSet
from include.hub import calendars as hub_calendars
from include.hub import links as hub_links
from include.hub import parking, plans, runs
from include.hub import series_exceptions as hub_series

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunParams:
    """The DAG's params (also the gateway's and the CLI's options)."""

    full_content: bool = False
    dry_run: bool = False
    force_deletions: bool = False  # after a safety stop: carry the deletions (confirm them)
    recover: bool = False
    refill_google: bool = False  # after a safety stop: make again in Google what was deleted there

    def __post_init__(self) -> None:
        if self.force_deletions and self.refill_google:
            raise ValueError("force_deletions and refill_google answer a safety stop in opposite ways: choose one")

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> RunParams:
        values = values or {}
        return cls(**{k: bool(values.get(k, False)) for k in asdict(cls())})


def leave_out_parked(
    parked: list[parking.Parked],
    links: list[HubLink],
    advoware_items: list[dict[str, Any]],
    google_items: list[dict[str, Any]],
) -> tuple[list[HubLink], list[dict[str, Any]], list[dict[str, Any]]]:
    """The planner's input without the parked items: their links, their Advoware appointments and
    their Google events (by id, and by our marker's frNr) are all left out, so the planner neither
    retries nor mistakes a half-hidden item for a deletion or an orphan."""
    frnrs = {p.frnr for p in parked if p.frnr is not None}
    gids = {p.google_event_id for p in parked if p.google_event_id}
    if not frnrs and not gids:
        return links, advoware_items, google_items
    # a parked item's link holds the other side's id too (e.g. an update that keeps failing)
    for lk in links:
        if lk.frnr in frnrs or lk.google_event_id in gids:
            if lk.frnr is not None:
                frnrs.add(lk.frnr)
            if lk.google_event_id:
                gids.add(lk.google_event_id)
    links = [lk for lk in links if lk.frnr not in frnrs and lk.google_event_id not in gids]
    advoware_items = [t for t in advoware_items if _frnr(t) not in frnrs]
    google_items = [
        e
        for e in google_items
        if e.get("id") not in gids and (e.get("recurringEventId") or "") not in gids and marker_of(e)[1] not in frnrs
    ]
    return links, advoware_items, google_items


def _settle_replayed(ctx: SyncContext, replayed: list[dict[str, Any]], plan: Plan) -> None:
    """A replayed item the plan (made from a full read) has nothing to do for needs no further full
    reads; one with an action keeps its mark until the executor writes it or it fails again."""
    frnrs = {a.advoware_id for a in plan.actions() if a.advoware_id is not None}
    gids = {a.google_event_id for a in plan.actions() if a.google_event_id}
    done = [int(r["id"]) for r in replayed if r["frnr"] not in frnrs and r["google_event_id"] not in gids]
    if done:
        with ctx.hub.transaction() as conn:
            hub_links.clear_replayed(conn, done)


def _frnr(termin: dict[str, Any]) -> int | None:
    try:
        return frnr_of(termin)
    except (TypeError, ValueError):
        return None


def _report_repairs(ctx: SyncContext, run_id: str, employee: str, repairs: list[str], plan: Plan) -> None:
    """A calendar made again, shared again or put back on the employee's list: in the run's report and
    one alert (the repair ends the incident: the next run finds the calendar as it should be)."""
    from include.alerts import calendar_repaired

    with ctx.hub.transaction() as conn:
        row = hub_calendars.get(conn, employee)
    calendar_id = row.calendar_id if row else None
    for what in dict.fromkeys(repairs):
        plan.reports.append(Report(kind=f"calendar_{what}", employee=employee, detail=f"calendar {calendar_id}"))
        alert = calendar_repaired(employee, what, run_id, calendar_id)
        if ctx.notify is not None:
            ctx.notify(alert)
        else:
            log.warning("ALERT %s: %s", alert.kind, alert.subject)


def prepare(ctx: SyncContext, run_id: str, employee: str, params: RunParams) -> dict[str, Any]:
    """Plan one employee's sync; returns {"plan_id", "employee", "counts", "dry_run", "stopped", "actions"}.

    A dry run writes nothing anywhere, not even a new employee's calendar: without one it plans
    against an empty Google side (everything would be created).
    """
    with ctx.hub.transaction() as conn:
        known = hub_calendars.get(conn, employee)
    provisioned = known is not None and bool(known.calendar_id)
    repairs: list[str] = []
    if not params.dry_run:
        ensure_calendar(ctx, employee)
        provisioned = True
        repairs += [r for r in (check_calendar(ctx, employee),) if r]
    if params.recover and provisioned and not params.dry_run:
        with uninterrupted():
            recover(ctx, employee)
    window = window_of(ctx)
    with ctx.hub.transaction() as conn:
        parked = parking.parked_items(conn, employee)
        replayed = hub_links.replayed_links(conn, employee)
    advoware_items = ctx.advoware.list_termine(employee, window.start, window.end)
    if provisioned:
        # a replayed item is read in full: its Google side may lie behind the stored sync token
        changes = read_google(ctx, employee, window, full=params.full_content or params.recover or bool(replayed))
        if changes.reason == "calendar_recreated":
            repairs.append("recreated")
    else:
        changes = ChangeSet("", [], None, "full", "no_token", 0)
    google_items = changes.items
    if parked:
        _, advoware_items, google_items = leave_out_parked(parked, [], advoware_items, google_items)
    if not params.dry_run:
        resolve_intents(ctx, employee, advoware_items, google_items)
    policy = Policy.from_settings(
        ctx.settings,
        write_protection=ctx.write_protection,
        force_deletions=params.force_deletions,
        refill_google=params.refill_google,
        dry_run=params.dry_run,
    )
    with ctx.hub.transaction() as conn:
        links = hub_links.load_links(conn, employee)
        exceptions = hub_series.load(conn, employee)
    links, advoware_items, google_items = leave_out_parked(parked, links, advoware_items, google_items)
    parked_ids = {p.google_event_id for p in parked}
    exceptions = [r for r in exceptions if r.instance_id not in parked_ids]
    if provisioned:
        google_items = complete_series(ctx, employee, google_items, links, exceptions, full=changes.full)
    plan = plan_sync(
        links, advoware_items, google_items, changes.full, policy, window, employee=employee, exceptions=exceptions
    )
    plan.reports.extend(
        Report(
            kind="parked",
            employee=employee,
            frnr=p.frnr,
            google_event_id=p.google_event_id,
            detail=f"dead letter {p.dead_letter_id} ({p.action})",
        )
        for p in parked
    )
    if repairs:
        _report_repairs(ctx, run_id, employee, repairs, plan)
    if replayed and changes.full and not params.dry_run and not plan.stop_reason:
        _settle_replayed(ctx, replayed, plan)
    counts = {k: v for k, v in plan.counts().items() if v}
    status = "stopped" if plan.stop_reason else ("dry_run" if params.dry_run else "running")
    with uninterrupted(final=True), ctx.hub.transaction() as conn:
        plan_id = plans.save_plan(conn, run_id, plan, sync_token=changes.next_sync_token)
        runs.start_run(conn, run_id, employee, {"plan": counts}, status=status, error=plan.stop_reason)
    log.info(
        "prepare %s: advoware %d items, google %d items (%s, %s); plan %d: %s",
        employee,
        len(advoware_items),
        len(changes.items),
        changes.kind,
        changes.reason,
        plan_id,
        " ".join(f"{k}={v}" for k, v in sorted(counts.items())),
    )
    for report in plan.reports:
        log.info(
            "report %s: %s frNr=%s event=%s %s",
            employee,
            report.kind,
            report.frnr,
            report.google_event_id,
            report.detail,
        )
    if plan.stop_reason:
        log.error(
            "STOPPED sync of %s: %s; withheld %s (answer it: run with refill_google to make again in "
            "Google what was deleted there, or with force_deletions to carry the deletions)",
            employee,
            plan.stop_reason,
            plan.withheld,
        )
        raise SyncStopped(f"sync of {employee} stopped: {plan.stop_reason}")
    return {
        "plan_id": plan_id,
        "employee": employee,
        "counts": counts,
        "dry_run": params.dry_run,
        "stopped": False,
        "actions": len(plan.actions()),
    }
