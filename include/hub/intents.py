"""Advoware create intents (table advoware_create_intents): written before the Advoware POST of a
Google event's twin, completed with the new frNr right after it, removed once the link is stored; an
open intent after a crash is resolved by include/calendar_sync/intents.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from include.hub.db import HubConnection, returned


@dataclass(frozen=True)
class Intent:
    id: int
    employee: str
    google_event_id: str
    fingerprint: str
    frnr: int | None
    status: str
    fresh: bool  # written by this call (no earlier attempt exists)


def begin_intent(conn: HubConnection, employee: str, google_event_id: str, fingerprint: str) -> Intent:
    """Write (or find) the intent to create the Advoware twin of a Google event."""
    row = conn.execute(
        """INSERT INTO advoware_create_intents (employee, google_event_id, fingerprint)
           VALUES (%s, %s, %s) ON CONFLICT (employee, google_event_id) DO NOTHING
           RETURNING id, employee, google_event_id, fingerprint, frnr, status""",
        (employee, google_event_id, fingerprint),
    ).fetchone()
    if row is not None:
        return Intent(**row, fresh=True)
    row = conn.execute(
        "SELECT id, employee, google_event_id, fingerprint, frnr, status FROM advoware_create_intents "
        "WHERE employee = %s AND google_event_id = %s",
        (employee, google_event_id),
    ).fetchone()
    assert row is not None
    if row["status"] == "abandoned" or (row["status"] == "done" and row["frnr"] is None):
        row = conn.execute(
            """UPDATE advoware_create_intents SET status = 'open', fingerprint = %s, frnr = NULL,
                   updated_at = now() WHERE id = %s
               RETURNING id, employee, google_event_id, fingerprint, frnr, status""",
            (fingerprint, row["id"]),
        ).fetchone()
        return Intent(**returned(row), fresh=True)
    return Intent(**row, fresh=False)


def complete_intent(conn: HubConnection, intent_id: int, frnr: int) -> None:
    conn.execute(
        "UPDATE advoware_create_intents SET frnr = %s, status = 'done', updated_at = now() WHERE id = %s",
        (frnr, intent_id),
    )


def finish_intent(conn: HubConnection, intent_id: int) -> None:
    """The link is stored (in the same transaction): the intent has served its purpose, and a later
    create for the same Google event (after a deletion) starts afresh."""
    conn.execute("DELETE FROM advoware_create_intents WHERE id = %s", (intent_id,))


def pending_intents(conn: HubConnection, employee: str) -> list[Intent]:
    """The employee's intents still open (a crash may have left their create half done)."""
    rows = conn.execute(
        "SELECT id, employee, google_event_id, fingerprint, frnr, status FROM advoware_create_intents "
        "WHERE employee = %s AND status = 'open' ORDER BY id",
        (employee,),
    ).fetchall()
    return [Intent(**r, fresh=False) for r in rows]
