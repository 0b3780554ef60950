"""Each employee's Google calendar as the sync uses it: the time window, the calendar (made on the
first run, remembered in the hub, made again if it was deleted by hand, shared again or put back on
the employee's list if they lost sight of it), and reading it.

The Google side lives in include/google_calendar (plain data, no hub); this module joins it with
the hub: the remembered calendar id and mode, the sync token, and the links that a recreated
calendar makes stale.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from googleapiclient.errors import HttpError

from include.calendar_engine.policy import Window
from include.calendar_engine.timeutil import BERLIN
from include.calendar_sync.context import SyncContext
from include.calendar_sync.planning_pool import uninterrupted
from include.google_calendar.client import GoogleCalendarClient
from include.google_calendar.errors import error_info
from include.google_calendar.provisioning import CalendarProvisioner, ProvisionResult
from include.google_calendar.reading import ChangeSet, read_changes
from include.hub import calendars as hub_calendars
from include.hub import series_exceptions as hub_series
from include.hub.db import Hub

log = logging.getLogger(__name__)

# An employee who lost sight of their calendar (unshared, taken off their list) gets it back within this;
# checking every run would double a quiet run's Google requests.
ACCESS_CHECK_EVERY = timedelta(hours=1)


def window_of(ctx: SyncContext) -> Window:
    sync = ctx.settings.sync
    return Window.around(ctx.today or date.today(), sync.window_days_back, sync.window_days_ahead)


def google_bounds(window: Window) -> tuple[datetime, datetime]:
    return (
        datetime.combine(window.start, time(0), BERLIN),
        datetime.combine(window.end + timedelta(days=1), time(0), BERLIN),
    )


def provision(google: GoogleCalendarClient, hub: Hub, employee: str, email: str) -> ProvisionResult:
    """The employee's calendar in Google and in the hub; a lost one's links are reset (they pointed
    into a calendar that is gone). One step the planning never cuts in half (planning_pool), so a
    planning given up for its slowness cannot make a second calendar beside its unit's task."""
    with uninterrupted():
        with hub.transaction() as conn:
            known = hub_calendars.get(conn, employee)
        result = CalendarProvisioner(google).ensure(
            employee, email, known_id=known.calendar_id if known else None, known_mode=known.mode if known else None
        )
        with hub.transaction() as conn:
            reset = hub_calendars.reset_links(conn, employee) if result.recreated else 0
            if result.recreated:  # the old calendar's series exceptions went with it
                hub_series.close_all(conn, employee)
            hub_calendars.upsert_calendar(
                conn,
                employee,
                email=email,
                calendar_id=result.calendar_id,
                mode=result.mode,
                acl_rule_id=result.acl_rule_id,
            )
            hub_calendars.mark_access_checked(conn, employee)
    if reset:
        log.info("calendar of %s recreated: %d links reset", employee, reset)
    return ProvisionResult(
        result.employee, result.calendar_id, result.mode, result.created, result.recreated, result.acl_rule_id, reset
    )


def ensure_calendar(ctx: SyncContext, employee: str, *, force: bool = False) -> str:
    """The employee's calendar id; provisioned on the first run (`force`: check it still exists)."""
    with ctx.hub.transaction() as conn:
        row = hub_calendars.get(conn, employee)
    if row is not None and row.calendar_id and not force:
        return row.calendar_id
    email = row.email if row else None
    if not email:
        raise LookupError(f"employee {employee} has no e-mail address in Advoware: no calendar")
    return provision(ctx.google, ctx.hub, employee, email).calendar_id


def check_calendar(ctx: SyncContext, employee: str, *, now: datetime | None = None) -> str | None:
    """At most every ACCESS_CHECK_EVERY: can the employee still see their calendar? Gives the access
    back, or makes a deleted calendar again (its links reset: the plan refills it from Advoware).
    Returns what was repaired ("reshared", "relisted", "recreated"), None when nothing was wrong."""
    with ctx.hub.transaction() as conn:
        row = hub_calendars.get(conn, employee)
    if row is None or not row.calendar_id or not row.email:
        return None
    now = now or datetime.now(UTC)
    if row.access_checked_at is not None and now - row.access_checked_at < ACCESS_CHECK_EVERY:
        return None
    outcome = CalendarProvisioner(ctx.google).check_access(employee, row.email, row.calendar_id)
    if outcome == "lost":
        provision(ctx.google, ctx.hub, employee, row.email)
        return "recreated"
    with ctx.hub.transaction() as conn:
        hub_calendars.mark_access_checked(conn, employee)
    return None if outcome == "ok" else outcome


def read_google(ctx: SyncContext, employee: str, window: Window, *, full: bool) -> ChangeSet:
    """The employee's changes since the stored sync token (or the window in full). An expired token
    is dropped at once; a calendar deleted by hand is made again and read in full."""
    tmin, tmax = google_bounds(window)
    with ctx.hub.transaction() as conn:
        row = hub_calendars.get(conn, employee)
    if row is None or not row.calendar_id:
        raise LookupError(f"employee {employee} has no provisioned calendar")
    session = ctx.google.session_for(row.email)
    try:
        changes = read_changes(session, row.calendar_id, row.sync_token, tmin, tmax, force_full=full)
    except HttpError as exc:
        if error_info(exc).status not in (404, 410):
            raise
        log.warning("calendar of %s not found: provisioning it again", employee)
        calendar_id = ensure_calendar(ctx, employee, force=True)
        changes = read_changes(session, calendar_id, None, tmin, tmax, force_full=True)
        changes.reason = "calendar_recreated"
        return changes
    if changes.reason == "full_sync_required":
        with ctx.hub.transaction() as conn:
            hub_calendars.clear_sync_token(conn, employee)
    return changes
