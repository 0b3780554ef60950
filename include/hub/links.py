"""Hub store of the calendar links (table calendar_links): one row per appointment and its event.

Functions take an open psycopg connection with dict rows (a `Hub` transaction) so the caller
decides the transaction: the executor writes each item's outcome in a transaction of its own.

A complete link has both ids. A "half" row (only frNr, or only the Google event id) records the
attempts and last error of an item whose create has not succeeded yet; the planner ignores half rows,
and the successful create completes the same row. A replayed parked item (include/hub/parking.py) is
marked REPLAYED in last_error until it is written or fails again.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from include.calendar_engine.plan import HubLink
from include.hub.db import HubConnection, returned

REPLAYED = "replayed"  # last_error of a replayed item until it is written or fails again

_LINK_COLUMNS = (
    "employee, frnr, google_event_id, advoware_fingerprint, google_fingerprint, "
    "advoware_changed_at, google_updated, status, span_start, span_end"
)


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def _link(row: dict[str, Any]) -> HubLink:
    values = dict(row)
    values["span_start"], values["span_end"] = _iso(values["span_start"]), _iso(values["span_end"])
    return HubLink(**values)


def load_links(conn: HubConnection, employee: str) -> list[HubLink]:
    """Every row of the employee (the planner skips deleted and half rows itself)."""
    rows = conn.execute(
        f"SELECT {_LINK_COLUMNS} FROM calendar_links WHERE employee = %s ORDER BY id", (employee,)
    ).fetchall()
    return [_link(r) for r in rows]


def find_link(
    conn: HubConnection, employee: str, *, frnr: int | None = None, google_event_id: str | None = None
) -> dict[str, Any] | None:
    """The row holding either id (the frNr row first), locked for the caller's transaction."""
    rows = matching(conn, employee, frnr, google_event_id)
    return rows[0] if rows else None


def matching(conn: HubConnection, employee: str, frnr: int | None, google_event_id: str | None) -> list[dict[str, Any]]:
    if frnr is None and google_event_id is None:
        return []
    return list(
        conn.execute(
            """SELECT * FROM calendar_links
           WHERE employee = %s AND ((%s::bigint IS NOT NULL AND frnr = %s)
                                    OR (%s::text IS NOT NULL AND google_event_id = %s))
           ORDER BY (frnr IS NOT DISTINCT FROM %s) DESC, id FOR UPDATE""",
            (employee, frnr, frnr, google_event_id, google_event_id, frnr),
        ).fetchall()
    )


def link_rows(conn: HubConnection, employee: str) -> list[dict[str, Any]]:
    """Every row of the employee as find_link returns them (unlocked), for `first_matching`."""
    return list(conn.execute("SELECT * FROM calendar_links WHERE employee = %s ORDER BY id", (employee,)).fetchall())


def first_matching(
    rows: list[dict[str, Any]], *, frnr: int | None = None, google_event_id: str | None = None
) -> dict[str, Any] | None:
    """find_link over rows read before (`link_rows`): the frNr row first, then by id."""
    if frnr is None and google_event_id is None:
        return None
    hits = [
        r
        for r in rows
        if (frnr is not None and r["frnr"] == frnr)
        or (google_event_id is not None and r["google_event_id"] == google_event_id)
    ]
    hits.sort(key=lambda r: (r["frnr"] != frnr, r["id"]))
    return hits[0] if hits else None


def save_link(conn: HubConnection, state: HubLink) -> int:
    """Insert or complete the employee's row for these ids (merging a half row into it)."""
    employee = state.employee
    rows = matching(conn, employee, state.frnr, state.google_event_id)
    keep = rows[0]["id"] if rows else None
    for extra in rows[1:]:  # a half row of the other side: its history is superseded by this link
        conn.execute("DELETE FROM calendar_links WHERE id = %s", (extra["id"],))
    values = (
        state.frnr,
        state.google_event_id,
        state.advoware_fingerprint,
        state.google_fingerprint,
        state.advoware_changed_at,
        state.google_updated,
        state.google_etag,
        state.status,
        state.span_start,
        state.span_end,
    )
    if keep is None:
        row = conn.execute(
            """INSERT INTO calendar_links (employee, frnr, google_event_id, advoware_fingerprint,
                   google_fingerprint, advoware_changed_at, google_updated, google_etag, status,
                   span_start, span_end)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (employee, *values),
        ).fetchone()
        return int(returned(row)["id"])
    conn.execute(
        """UPDATE calendar_links SET frnr = %s, google_event_id = %s, advoware_fingerprint = %s,
               google_fingerprint = %s, advoware_changed_at = %s, google_updated = %s,
               google_etag = coalesce(%s, google_etag), status = %s,
               span_start = coalesce(%s, span_start), span_end = coalesce(%s, span_end),
               attempts = 0, last_error = NULL, updated_at = now()
           WHERE id = %s""",
        (*values, keep),
    )
    return int(keep)


def mark_deleted(conn: HubConnection, employee: str, *, frnr: int | None, google_event_id: str | None) -> int:
    """Both sides gone (or deleted by us): the row stays as history with status 'deleted'."""
    rows = matching(conn, employee, frnr, google_event_id)
    for row in rows:
        conn.execute(
            "UPDATE calendar_links SET status = 'deleted', attempts = 0, last_error = NULL, "
            "updated_at = now() WHERE id = %s",
            (row["id"],),
        )
    return len(rows)


def record_failure(
    conn: HubConnection,
    employee: str,
    *,
    frnr: int | None,
    google_event_id: str | None,
    error: str,
    status: str = "failed",
    known_link: bool = True,
) -> int:
    """Count a failed attempt; returns the item's attempts so far (0: nothing recorded). Without a
    row yet, a half row keeps the count (never a full link: that would make the planner believe the
    item exists on both sides)."""
    rows = matching(conn, employee, frnr, google_event_id)
    if rows:
        row = conn.execute(
            """UPDATE calendar_links SET attempts = attempts + 1, last_error = %s,
                   status = CASE WHEN status = 'deleted' THEN status ELSE %s END, updated_at = now()
               WHERE id = %s RETURNING attempts""",
            (error[:500], status, rows[0]["id"]),
        ).fetchone()
        return int(returned(row)["attempts"])
    if not known_link:
        # one side only: the frNr when there is one, else the Google id
        if frnr is not None:
            google_event_id = None
        conn.execute(
            """INSERT INTO calendar_links (employee, frnr, google_event_id, status, attempts, last_error)
               VALUES (%s, %s, %s, %s, 1, %s)""",
            (employee, frnr, google_event_id, status, error[:500]),
        )
        return 1
    return 0


def replayed_links(conn: HubConnection, employee: str) -> list[dict[str, Any]]:
    """Rows replayed and not yet written or failed again (saving or failing clears the mark)."""
    return list(
        conn.execute(
            "SELECT id, frnr, google_event_id FROM calendar_links WHERE employee = %s AND last_error = %s ORDER BY id",
            (employee, REPLAYED),
        ).fetchall()
    )


def clear_replayed(conn: HubConnection, ids: list[int]) -> None:
    conn.execute("UPDATE calendar_links SET last_error = NULL WHERE id = ANY(%s) AND last_error = %s", (ids, REPLAYED))


def linked_frnrs(conn: HubConnection, employee: str) -> set[int]:
    rows = conn.execute(
        "SELECT frnr FROM calendar_links WHERE employee = %s AND frnr IS NOT NULL "
        "AND google_event_id IS NOT NULL AND status <> 'deleted'",
        (employee,),
    ).fetchall()
    return {int(r["frnr"]) for r in rows}


def failures(conn: HubConnection, employee: str | None = None) -> list[dict[str, Any]]:
    sql = (
        "SELECT employee, frnr, google_event_id, status, attempts, last_error FROM calendar_links "
        "WHERE status IN ('failed', 'conflict')"
    )
    args: tuple[Any, ...] = ()
    if employee:
        sql += " AND employee = %s"
        args = (employee,)
    return list(conn.execute(sql + " ORDER BY employee, id", args).fetchall())


def employees_of_frnr(conn: HubConnection, frnr: int) -> set[str]:
    """Whose calendars hold the Advoware appointment `frnr` (a proxy write by frnr names no employee)."""
    rows = conn.execute("SELECT DISTINCT employee FROM calendar_links WHERE frnr = %s", (frnr,)).fetchall()
    return {r["employee"] for r in rows}
