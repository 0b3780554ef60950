"""Hub store of the series exceptions (table series_exceptions): what the sync knows of each
exception in an employee's calendar (include/calendar_engine/series_exceptions.py is the policy).

A row is *standing* while the exception stands in Google (kept and reported), or closed: reverted
(written back to its occurrence by the sync), dropped (an orphan the sync deleted) or gone (Google
removed it, or a person undid it). Ids, times, a content hash and counts only.
"""

from __future__ import annotations

from include.calendar_engine.series_exceptions import STANDING, HubException
from include.hub.db import HubConnection, returned

_COLUMNS = "employee, instance_id, master_event_id, original_start, frnr, kind, fingerprint, status"


def load(conn: HubConnection, employee: str) -> list[HubException]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM series_exceptions WHERE employee = %s ORDER BY id", (employee,)
    ).fetchall()
    return [HubException(**r) for r in rows]


def record(conn: HubConnection, row: HubException) -> None:
    """Insert or update the exception's row with this state (a closed row is closed now, once)."""
    closed = row.status != STANDING
    conn.execute(
        """INSERT INTO series_exceptions (employee, instance_id, master_event_id, original_start, frnr, kind,
               fingerprint, status, closed_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END)
           ON CONFLICT (employee, instance_id) DO UPDATE SET master_event_id = EXCLUDED.master_event_id,
               original_start = EXCLUDED.original_start, frnr = coalesce(EXCLUDED.frnr, series_exceptions.frnr),
               kind = EXCLUDED.kind, fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status,
               attempts = 0, last_seen_at = now(),
               closed_at = CASE WHEN %s THEN coalesce(series_exceptions.closed_at, now()) END""",
        (
            row.employee,
            row.instance_id,
            row.master_event_id,
            row.original_start,
            row.frnr,
            row.kind,
            row.fingerprint,
            row.status,
            closed,
            closed,
        ),
    )


def close(conn: HubConnection, employee: str, instance_id: str, status: str) -> int:
    """Close a row (reverted, dropped, gone); returns how many rows it closed."""
    return conn.execute(
        """UPDATE series_exceptions SET status = %s, attempts = 0, last_seen_at = now(),
               closed_at = coalesce(closed_at, now())
           WHERE employee = %s AND instance_id = %s""",
        (status, employee, instance_id),
    ).rowcount


def record_failure(conn: HubConnection, row: HubException) -> int:
    """Count a failed attempt at the exception (a row standing for it if there is none); returns the
    attempts so far."""
    found = conn.execute(
        """INSERT INTO series_exceptions (employee, instance_id, master_event_id, original_start, frnr, kind,
               fingerprint, status, attempts)
           VALUES (%s, %s, %s, %s, %s, %s, %s, 'standing', 1)
           ON CONFLICT (employee, instance_id) DO UPDATE SET attempts = series_exceptions.attempts + 1
           RETURNING attempts""",
        (row.employee, row.instance_id, row.master_event_id, row.original_start, row.frnr, row.kind, row.fingerprint),
    ).fetchone()
    return int(returned(found)["attempts"])


def close_all(conn: HubConnection, employee: str) -> int:
    """The employee's calendar was made anew: every exception went with the old one (gone)."""
    return conn.execute(
        """UPDATE series_exceptions SET status = 'gone', attempts = 0, closed_at = coalesce(closed_at, now())
           WHERE employee = %s AND status = 'standing'""",
        (employee,),
    ).rowcount
