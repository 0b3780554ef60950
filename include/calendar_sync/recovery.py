"""Rebuild an employee's hub links from Google's extended properties and Advoware (lost or
restored hub).

Every event in the employee's calendar (window, full listing) that carries our marker for this
employee and an frNr that Advoware lists becomes a link again. When both sides hold the same content
the link records both fingerprints (nothing to do next run); when they differ, the Advoware
fingerprint is left empty, so the next run writes Advoware's version to Google (Advoware is the
system of record; a conflict the lost hub could have decided is not guessed). Events without a
marker are left to the next run's adoption by content. The Google sync token is dropped so the next
run reads the window in full. Open create intents stay: the executor resolves them.
"""

from __future__ import annotations

import logging
from typing import Any

from include.calendar_engine.fingerprint import fingerprint
from include.calendar_engine.mapping_advoware import changed_at_of, frnr_of, from_advoware
from include.calendar_engine.mapping_google import from_google, is_cancelled
from include.calendar_engine.marker import marker_of
from include.calendar_engine.models import Appointment
from include.calendar_engine.plan import HubLink
from include.calendar_sync.calendars import ensure_calendar, google_bounds, window_of
from include.calendar_sync.context import SyncContext
from include.google_calendar.reading import list_window
from include.hub import calendars as hub_calendars
from include.hub import links as hub_links

log = logging.getLogger(__name__)

_TEXTS = ("title", "note", "location", "matter")


def _same(a: Appointment, g: Appointment, anonymize: bool) -> bool:
    left, right = a.content(), g.content()
    if anonymize:  # Google holds an anonymised copy: compare times and flags only
        for key in _TEXTS:
            left.pop(key)
            right.pop(key)
    return left == right


def recover(ctx: SyncContext, employee: str) -> dict[str, Any]:
    ensure_calendar(ctx, employee)
    session, calendar_id = ctx.calendar(employee)
    window = window_of(ctx)
    tmin, tmax = google_bounds(window)
    events = list_window(session, calendar_id, tmin, tmax).items
    advoware: dict[int, dict[str, Any]] = {}
    for raw in ctx.advoware.list_termine(employee, window.start, window.end):
        frnr = frnr_of(raw)
        if frnr is not None:
            advoware[frnr] = raw
    linked = differing = 0
    with ctx.hub.transaction() as conn:
        for event in events:
            if is_cancelled(event) or event.get("recurringEventId"):
                continue
            m_employee, frnr, _origin = marker_of(event)
            if frnr is None or (m_employee and m_employee.upper() != employee.upper()) or frnr not in advoware:
                continue
            g = from_google(event)
            if not isinstance(g, Appointment):
                continue
            try:
                a = from_advoware(advoware[frnr], employee)
            except (TypeError, ValueError):
                continue
            same = _same(a, g, ctx.settings.sync.anonymize)
            differing += not same
            first, last = a.span()
            hub_links.save_link(
                conn,
                HubLink(
                    employee=employee,
                    frnr=frnr,
                    google_event_id=event["id"],
                    advoware_fingerprint=fingerprint(a) if same else None,
                    google_fingerprint=fingerprint(g),
                    advoware_changed_at=changed_at_of(advoware[frnr]),
                    google_updated=event.get("updated"),
                    google_etag=event.get("etag"),
                    span_start=first.isoformat(),
                    span_end=last.isoformat(),
                ),
            )
            linked += 1
        hub_calendars.clear_sync_token(conn, employee)
    log.info(
        "recover %s: %d events read, %d links rebuilt (%d with differing content)",
        employee,
        len(events),
        linked,
        differing,
    )
    return {"employee": employee, "events": len(events), "linked": linked, "differing": differing}
