"""Before planning: what the planner needs to judge the series exceptions a listing returned.

- A cancelled exception is read again by its instance id: Google returns the same tombstone for an
  occurrence a person cancelled and for an exception Google itself removed (its series changed); the
  instance as Google shows it now tells them apart (still cancelled, or the occurrence back as the
  series has it). Not done again in a full listing for a cancellation the hub already knows.
- The series of an exception is fetched when neither the listing nor the hub has it (an exception of
  a series created in Google changed, its series did not): whether the series can go to Advoware
  depends on it.
Both cost a request only when exceptions changed; a quiet run makes none.
"""

from __future__ import annotations

from typing import Any

from include.calendar_engine.plan import HubLink
from include.calendar_engine.series_exceptions import CANCELLED, HubException, is_exception
from include.calendar_sync.context import SyncContext
from include.google_calendar.writing import EventWriter


def complete_series(
    ctx: SyncContext,
    employee: str,
    items: list[dict[str, Any]],
    links: list[HubLink],
    rows: list[HubException],
    *,
    full: bool,
) -> list[dict[str, Any]]:
    """The listing with cancelled exceptions read again and missing unlinked series added."""
    if not any(is_exception(e) for e in items):
        return items
    session, calendar_id = ctx.calendar(employee)
    writer = EventWriter(session, calendar_id)
    known = {r.instance_id: r for r in rows}
    out = []
    for item in items:
        if is_exception(item) and item.get("status") == "cancelled":
            row = known.get(str(item.get("id")))
            if not (full and row is not None and row.standing and row.fingerprint == CANCELLED):
                item = writer.get(str(item["id"])) or item
        out.append(item)
    listed = {str(e.get("id")) for e in out}
    linked = {lk.google_event_id for lk in links if lk.status != "deleted" and lk.google_event_id}
    for master_id in sorted({str(e["recurringEventId"]) for e in out if is_exception(e)} - listed - linked):
        master = writer.get(master_id)
        if master is not None:
            out.append(master)
    return out
