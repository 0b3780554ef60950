"""The hub table `dead_letters`: work that could not be done, kept to be listed and replayed.

Functions take an open hub connection (include.hub.db.connect, dict rows) so callers choose the
transaction. `source` is 'webhook' (an item that could never be synced, e.g. no valid id),
'beteiligte_sync' (an id that kept failing) or 'calendar_sync' (a parked calendar item, entity_id
'<employee>:<frNr or Google event id>', payload {employee, frnr, google_event_id, action}).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg.types.json import Jsonb

from include.hub.db import HubConnection, returned

_COLUMNS = "id, source, entity_id, reason, payload, attempts, created_at, replayed_at"


def add(
    conn: HubConnection,
    *,
    source: str,
    reason: str,
    entity_id: str | None = None,
    payload: Any = None,
    attempts: int = 0,
) -> int:
    row = conn.execute(
        "INSERT INTO dead_letters (source, entity_id, reason, payload, attempts) VALUES (%s, %s, %s, %s, %s)"
        " RETURNING id",
        (source, entity_id, reason[:4000], Jsonb(payload) if payload is not None else None, attempts),
    ).fetchone()
    return int(returned(row)["id"])


def add_from_outbox(conn: HubConnection, entry: Mapping[str, Any]) -> int:
    """Insert one entry of the queue's dead-letter outbox (include.queue.party_queue)."""
    return add(
        conn,
        source=entry.get("source") or "webhook",
        reason=str(entry.get("reason") or "unknown"),
        entity_id=entry.get("entity_id"),
        payload=entry.get("payload"),
        attempts=int(entry.get("attempts") or 0),
    )


def list_(
    conn: HubConnection,
    *,
    include_replayed: bool = False,
    source: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    where, params = [], []
    if not include_replayed:
        where.append("replayed_at IS NULL")
    if source:
        where.append("source = %s")
        params.append(source)
    sql = f"SELECT {_COLUMNS} FROM dead_letters"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id LIMIT %s OFFSET %s"
    return [dict(r) for r in conn.execute(sql, (*params, limit, offset)).fetchall()]


def get(conn: HubConnection, dead_letter_id: int) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = %s", (dead_letter_id,)).fetchone()
    return dict(row) if row else None


def mark_replayed(conn: HubConnection, dead_letter_id: int) -> bool:
    """Set replayed_at once; False if it was already replayed (or does not exist)."""
    row = conn.execute(
        "UPDATE dead_letters SET replayed_at = now() WHERE id = %s AND replayed_at IS NULL RETURNING id",
        (dead_letter_id,),
    ).fetchone()
    return row is not None


def count_open(conn: HubConnection, *, exclude_source: str | None = None) -> int:
    """Open (not replayed) dead letters, optionally without one source (the parties' alert leaves
    out the calendar's parked items)."""
    row = conn.execute(
        "SELECT count(*) AS n FROM dead_letters WHERE replayed_at IS NULL AND source IS DISTINCT FROM %s",
        (exclude_source,),
    ).fetchone()
    return int(returned(row)["n"])


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for k in ("created_at", "replayed_at"):
        if out.get(k) is not None:
            out[k] = out[k].isoformat()
    return out


CALENDAR_SOURCE = "calendar_sync"
