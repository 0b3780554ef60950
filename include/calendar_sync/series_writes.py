"""Applying the plan's series-exception actions (include/calendar_engine/series_exceptions.py has the
policy): the hub's row of each exception, and the two Google writes, a revert and an orphan's removal.

These never touch the series' link: an exception is not its series. A failing one is counted on its
own row and, after `SYNC_CALENDAR_MAX_ATTEMPTS`, parked by its instance id (the series syncs on).
Writes go to the instance id only, as PATCH of the mapped fields (what a revert puts back) with
If-Match, so nothing the sync does not map is lost from the instance; sendUpdates=none.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from googleapiclient.errors import HttpError

from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.mapping_google import from_google
from include.calendar_engine.marker import KEY_MATTER_NR, KEY_MATTER_RUBRUM
from include.calendar_engine.models import Appointment
from include.calendar_engine.plan import (
    CloseException,
    DropException,
    ExceptionAction,
    KeepException,
    RevertException,
)
from include.calendar_engine.series_exceptions import (
    CANCELLED,
    CHANGED,
    DROPPED,
    EXCEPTION_FIELDS,
    GONE,
    REVERTED,
    STANDING,
    HubException,
    read_exception,
)
from include.calendar_sync.context import SyncContext
from include.google_calendar.errors import error_info
from include.google_calendar.writing import SEND_UPDATES, EventWriter, WriteOp
from include.hub import parking
from include.hub import series_exceptions as hub_series

# what a revert writes: the mapped fields of the occurrence (to_google's keys), nothing else
REVERTED_FIELDS = EXCEPTION_FIELDS


class Skipped(Exception):
    """The exception is left for the next run (a reason, not an error)."""


def row_of(employee: str, a: ExceptionAction, status: str) -> HubException:
    return HubException(
        employee=employee,
        instance_id=a.google_event_id,
        master_event_id=a.master_event_id,
        original_start=a.original_start,
        frnr=a.frnr,
        kind=a.exception_kind or "moved",
        fingerprint=a.google_fingerprint or "",
        status=status,
    )


def read_before(writer: EventWriter, actions: list[Any]) -> dict[str, dict[str, Any]]:
    """Before a phase rewrites masters: the exceptions its kept actions must be able to re-apply but
    do not carry (standing, not listed this run), as Google holds them now, by instance id."""
    out = {}
    for a in actions:
        if isinstance(a, KeepException) and a.google_body is not None and a.exception_body is None:
            current = writer.get(a.google_event_id)
            if current is not None:
                out[a.google_event_id] = {k: current[k] for k in EXCEPTION_FIELDS if k in current}
    return out


def apply(
    ctx: SyncContext,
    writer: EventWriter,
    employee: str,
    a: ExceptionAction,
    before: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """One action, dispatched by its class; returns (the outcome's result, a detail of ids and reasons).
    `before`: a kept exception as read before its series was rewritten (`read_before`)."""
    match a:
        case KeepException():
            return _keep(ctx, writer, employee, a, before)
        case CloseException():
            with ctx.hub.transaction() as conn:
                hub_series.close(conn, employee, a.google_event_id, GONE)
            return "closed", "no longer an exception"
        case RevertException():
            return _revert(ctx, writer, employee, a)
        case DropException():
            return _drop(ctx, writer, employee, a)
    raise TypeError(f"not a series-exception action: {type(a).__name__}")


def _keep(
    ctx: SyncContext, writer: EventWriter, employee: str, a: KeepException, before: dict[str, Any] | None
) -> tuple[str, str]:
    """Record the exception as standing. When the plan rewrote its series first (`google_body`: the
    occurrence), Google may have dropped it then (its timing model): it is read again; one Google
    removed is written again (a person's change must not silently undo itself) and recorded as it
    stands. Closed only when it cannot be re-applied (the occurrence is gone, or what to write is
    not known)."""
    row = row_of(employee, a, STANDING)
    detail = "standing in Google"
    if a.google_body is not None:
        current = writer.get(a.google_event_id)
        occurrence = from_google({k: v for k, v in a.google_body.items() if k not in ("id", "status")})
        fresh = read_exception(current) if current is not None else None
        if fresh is not None and (
            not fresh.cancelled and isinstance(occurrence, Appointment) and fresh.fp == fingerprint(occurrence)
        ):
            again = a.exception_body or before
            if again is not None and isinstance(occurrence, Appointment) and _is_occurrence(again, occurrence):
                again = None  # read after Google removed it (a retried phase): nothing left to re-apply
            if again is not None and current is not None:
                fresh = read_exception(_reapply(writer, a, current, again))
                detail = "written again after its series was rewritten"
            else:
                fresh = None
        if fresh is None:
            with ctx.hub.transaction() as conn:
                hub_series.close(conn, employee, row.instance_id, GONE)
            return "closed", "dropped by Google when its series was rewritten"
        row = replace(row, fingerprint=fresh.fp, kind=CANCELLED if fresh.cancelled else row.kind)
    with ctx.hub.transaction() as conn:
        hub_series.record(conn, row)
    return "kept", detail


def _is_occurrence(body: dict[str, Any], occurrence: Appointment) -> bool:
    if body.get("status") == "cancelled":
        return False
    parsed = from_google({k: v for k, v in body.items() if k != "status"})
    return isinstance(parsed, Appointment) and fingerprint(parsed) == fingerprint(occurrence)


def _reapply(writer: EventWriter, a: KeepException, current: dict[str, Any], again: dict[str, Any]) -> dict[str, Any]:
    """The exception written again to its instance: cancelled again, or its fields patched back. One
    that only changed fields (not its times) takes the new occurrence's times, as Google's models
    that keep it let it follow the series."""
    iid = a.google_event_id
    if again.get("status") == "cancelled":
        _delete(writer, iid)
        return {**current, "status": "cancelled"}
    body = {k: v for k, v in again.items() if k in EXCEPTION_FIELDS}
    if a.exception_kind == CHANGED:
        body.update({k: a.google_body[k] for k in ("start", "end") if a.google_body and k in a.google_body})
    written = _patch(writer, iid, body, current)
    return dict(written) if isinstance(written, dict) else {**current, **body}


def _patch(writer: EventWriter, iid: str, body: dict[str, Any], current: dict[str, Any]) -> Any:
    """PATCH the instance, If-Match the etag of `current` (as read): Skipped if it changed since."""

    def patch(s: Any) -> Any:
        req = s.events().patch(calendarId=writer.calendar_id, eventId=iid, body=body, sendUpdates=SEND_UPDATES)
        if current.get("etag"):
            req.headers["If-Match"] = current["etag"]
        return req

    try:
        return writer.session.execute(patch, "events.patch")
    except HttpError as exc:
        if error_info(exc).status == 412:
            raise Skipped("changed in Google since it was read (If-Match failed)") from None
        raise


def _delete(writer: EventWriter, iid: str) -> None:
    result = writer.apply(WriteOp.delete(iid))
    if result.outcome not in ("deleted", "already_deleted"):
        raise RuntimeError(f"delete {result.outcome}: {result.error or ''}")


def _revert(ctx: SyncContext, writer: EventWriter, employee: str, a: RevertException) -> tuple[str, str]:
    """The instance back to its occurrence: the series' times and mapped fields; a cancelled one
    restored. Nothing is written if it already is (a retried phase, or Google did it)."""
    iid = a.google_event_id
    current = writer.get(iid)
    if current is None:
        raise Skipped("the occurrence no longer exists (its series changed)")
    done = current.get("status") != "cancelled" and read_exception(current).fp == a.google_fingerprint
    if not done:
        body: dict[str, Any] = {k: v for k, v in a.google_body.items() if k in REVERTED_FIELDS}
        ours = dict((a.google_body.get("extendedProperties") or {}).get("private") or {})
        for key in (KEY_MATTER_NR, KEY_MATTER_RUBRUM):
            ours.setdefault(key, None)  # PATCH merges private properties: a matter the series lacks goes
        body["extendedProperties"] = {"private": ours}
        _patch(writer, iid, body, current)
    with ctx.hub.transaction() as conn:
        hub_series.record(conn, row_of(employee, a, REVERTED))
    return "reverted", "written back to its occurrence" if not done else "already as its series"


def _drop(ctx: SyncContext, writer: EventWriter, employee: str, a: DropException) -> tuple[str, str]:
    """An orphan (its original start is no occurrence of the series any more) deleted in Google,
    unless Google removed it already."""
    iid = a.google_event_id
    current = writer.get(iid)
    if current is None or current.get("status") == "cancelled":
        with ctx.hub.transaction() as conn:
            hub_series.close(conn, employee, iid, GONE)
        return "closed", "removed by Google"
    _delete(writer, iid)
    with ctx.hub.transaction() as conn:
        hub_series.close(conn, employee, iid, DROPPED)
    return "dropped", "orphan deleted"


def fail(ctx: SyncContext, employee: str, a: ExceptionAction, error: str) -> int | None:
    """Count the failure on the exception's row; at the maximum of attempts park it (by its instance
    id only, so its series is never left out). Returns the dead letter's id when parked."""
    with ctx.hub.transaction() as conn:
        attempts = hub_series.record_failure(conn, row_of(employee, a, STANDING))
        if attempts < ctx.settings.sync.calendar_max_attempts:
            return None
        return parking.park(
            conn, employee, frnr=None, google_event_id=a.google_event_id, kind=a.kind, error=error, attempts=attempts
        )
