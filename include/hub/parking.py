"""Parked calendar items (dead letters of source 'calendar_sync'): an item that failed
`SYNC_CALENDAR_MAX_ATTEMPTS` times gets an open dead letter (payload {employee, frnr,
google_event_id, action}, ids only); prepare leaves it out of the plan until `unpark` (the dead
letter's replay) starts it again.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.hub import calendars as hub_calendars
from include.hub import dead_letters
from include.hub.db import HubConnection
from include.hub.links import REPLAYED, matching

DEAD_LETTER_SOURCE = dead_letters.CALENDAR_SOURCE


@dataclass(frozen=True)
class Parked:
    """An item that failed `calendar_max_attempts` times: left out of the plans until replayed."""

    dead_letter_id: int
    employee: str
    frnr: int | None
    google_event_id: str | None
    action: str | None


def park(
    conn: HubConnection,
    employee: str,
    *,
    frnr: int | None,
    google_event_id: str | None,
    kind: str,
    error: str,
    attempts: int,
) -> int:
    """Park a failing item: its link stays 'failed' and an open dead letter (ids only, never a
    text) lets a person see and replay it. Returns the dead letter's id (an open one is reused)."""
    entity = f"{employee}:{frnr if frnr is not None else google_event_id}"
    open_row = conn.execute(
        "SELECT id FROM dead_letters WHERE source = %s AND entity_id = %s AND replayed_at IS NULL ORDER BY id LIMIT 1",
        (DEAD_LETTER_SOURCE, entity),
    ).fetchone()
    if open_row is not None:
        return int(open_row["id"])
    for row in matching(conn, employee, frnr, google_event_id):
        conn.execute(
            "UPDATE calendar_links SET status = 'failed', updated_at = now() WHERE id = %s AND status <> 'deleted'",
            (row["id"],),
        )
    reason = f"{kind} frNr={frnr} event={google_event_id} failed {attempts} times, last: {error}"
    payload = {"employee": employee, "frnr": frnr, "google_event_id": google_event_id, "action": kind}
    return dead_letters.add(
        conn, source=DEAD_LETTER_SOURCE, reason=reason, entity_id=entity, payload=payload, attempts=attempts
    )


def parked_items(conn: HubConnection, employee: str) -> list[Parked]:
    """The employee's open calendar dead letters (oldest first)."""
    rows = conn.execute(
        """SELECT id, payload FROM dead_letters
           WHERE source = %s AND replayed_at IS NULL AND payload->>'employee' = %s ORDER BY id""",
        (DEAD_LETTER_SOURCE, employee),
    ).fetchall()
    out = []
    for r in rows:
        p = r["payload"] or {}
        frnr = p.get("frnr")
        out.append(
            Parked(
                int(r["id"]),
                employee,
                int(frnr) if frnr is not None else None,
                p.get("google_event_id"),
                p.get("action"),
            )
        )
    return out


def unpark(conn: HubConnection, employee: str, *, frnr: int | None, google_event_id: str | None) -> int:
    """Replay of a parked item: its rows start again (attempts 0, 'pending' unless deleted) marked
    REPLAYED, which makes the next prepare read the employee's Google window in full (the item's
    Google side may have been read, and passed over, while it was parked; a run in flight may still
    save a newer sync token). Without a row the sync token is dropped instead. Returns the rows."""
    rows = matching(conn, employee, frnr, google_event_id)
    for row in rows:
        conn.execute(
            """UPDATE calendar_links SET attempts = 0, last_error = %s,
                            status = CASE WHEN status = 'deleted' THEN status ELSE 'pending' END,
                            updated_at = now() WHERE id = %s""",
            (REPLAYED, row["id"]),
        )
    if not rows:
        hub_calendars.clear_sync_token(conn, employee)
    return len(rows)
