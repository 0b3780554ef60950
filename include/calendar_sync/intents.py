"""Resolving Advoware create intents left by a crash, before the next plan is made.

An open intent means: we meant to create the Advoware twin of a Google event, and may have done it
without recording the link (killed between the POST and the hub write). If Advoware's listing holds
an unlinked appointment of the employee with the intended content (or the frNr the intent already
recorded), that is our appointment: the Google event gets its marker, the link is stored and the
intent removed. Otherwise the intent stays, and the planner's create_advoware repeats the POST.
"""

from __future__ import annotations

import logging
from typing import Any

from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.mapping_advoware import changed_at_of, frnr_of, from_advoware
from include.calendar_engine.mapping_google import from_google
from include.calendar_engine.marker import ORIGIN_GOOGLE, marker_properties
from include.calendar_engine.models import Appointment
from include.calendar_engine.plan import HubLink
from include.calendar_sync.context import SyncContext
from include.google_calendar.writing import EventWriter, WriteOp
from include.hub import intents as hub_intents
from include.hub import links as hub_links

log = logging.getLogger(__name__)


def _fp(termin: dict[str, Any], employee: str) -> str | None:
    try:
        return fingerprint(from_advoware(termin, employee))
    except (TypeError, ValueError):
        return None


def created_before(
    intent: hub_intents.Intent, employee: str, advoware_items: list[dict[str, Any]], linked: set[int]
) -> dict[str, Any] | None:
    """THE crash recovery of an Advoware create (prepare's intent resolution and the executor's retry
    both ask here): the appointment a create whose answer was lost made. The frNr the intent recorded,
    or else an appointment of the employee that no link holds and that has the intended content."""
    for termin in advoware_items:
        frnr = frnr_of(termin)
        if frnr is None or frnr < 0 or frnr in linked:
            continue
        if frnr == intent.frnr or (intent.frnr is None and _fp(termin, employee) == intent.fingerprint):
            return termin
    return None


def resolve_intents(
    ctx: SyncContext, employee: str, advoware_items: list[dict[str, Any]], google_items: list[dict[str, Any]]
) -> int:
    """Link what a crashed create left behind; returns how many intents were resolved."""
    with ctx.hub.transaction() as conn:
        intents = hub_intents.pending_intents(conn, employee)
        linked = hub_links.linked_frnrs(conn, employee)
    if not intents:
        return 0
    session, calendar_id = ctx.calendar(employee)
    writer = EventWriter(session, calendar_id)
    events = {e.get("id"): e for e in google_items}
    resolved = 0
    for intent in intents:
        match = created_before(intent, employee, advoware_items, linked)
        if match is None:
            continue
        frnr = frnr_of(match)
        gid = intent.google_event_id
        patch = {"extendedProperties": {"private": marker_properties(employee, frnr, ORIGIN_GOOGLE)}}
        result = writer.apply(WriteOp.patch(gid, patch))
        if not result.ok:
            continue  # the Google event is gone: the planner decides about the Advoware item
        event = events.get(gid) or result.event
        parsed = from_google(event) if event else None
        appt = from_advoware(match, employee)
        first, last = appt.span()
        state = HubLink(
            employee=employee,
            frnr=frnr,
            google_event_id=gid,
            advoware_fingerprint=fingerprint(appt),
            google_fingerprint=fingerprint(parsed) if isinstance(parsed, Appointment) else None,
            advoware_changed_at=changed_at_of(match),
            google_updated=(result.event or {}).get("updated"),
            google_etag=(result.event or {}).get("etag"),
            span_start=first.isoformat(),
            span_end=last.isoformat(),
        )
        with ctx.hub.transaction() as conn:
            hub_links.save_link(conn, state)
            hub_intents.finish_intent(conn, intent.id)
        linked.add(frnr)  # type: ignore[arg-type]
        resolved += 1
        log.info("intent of %s for event %s resolved: frNr=%s created before a crash, linked", employee, gid, frnr)
    return resolved
