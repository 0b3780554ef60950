"""Replaying a dead letter, by its source (the CLI, the gateway and the status view all replay here).

Party letters: `enqueue(ids)` puts the id back in the work queue (PartyQueue.enqueue bound to kind
'replay'); enqueue first: a crash in between leaves the letter open, and a second replay is harmless
(coalesced). Calendar letters ('calendar_sync', a parked item): the item's link starts again
(attempts 0, 'pending') and the employee's next calendar run reads the window in full and plans it
again; `enqueue` is not called. That and the mark are one transaction. Starting the run that carries
a replayed item is the caller's (each has its own way to reach Airflow).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from include.hub import dead_letters, parking
from include.hub.db import Hub, returned


def replay(hub: Hub, dead_letter_id: int, enqueue: Callable[[list[str]], Any]) -> dict[str, Any]:
    """Replay, then mark replayed; returns the letter (to_json). Raises LookupError (unknown id) or
    ValueError (nothing replayable, or already replayed)."""
    with hub.transaction() as conn:
        row = dead_letters.get(conn, dead_letter_id)
    if row is None:
        raise LookupError(f"dead letter {dead_letter_id} does not exist")
    if row["replayed_at"] is not None:
        raise ValueError(f"dead letter {dead_letter_id} was already replayed at {row['replayed_at'].isoformat()}")
    if row["source"] == dead_letters.CALENDAR_SOURCE:
        return _replay_calendar(hub, row)
    if not row["entity_id"]:
        raise ValueError(f"dead letter {dead_letter_id} has no valid id to replay (reason: {row['reason']})")
    enqueue([row["entity_id"]])
    with hub.transaction() as conn:
        dead_letters.mark_replayed(conn, dead_letter_id)
        row = dead_letters.get(conn, dead_letter_id)
    return dead_letters.to_json(returned(row))


def _replay_calendar(hub: Hub, row: dict[str, Any]) -> dict[str, Any]:
    payload = row["payload"] or {}
    employee = payload.get("employee")
    if not employee or (payload.get("frnr") is None and not payload.get("google_event_id")):
        raise ValueError(f"dead letter {row['id']} names no calendar item to replay")
    frnr = payload.get("frnr")
    with hub.transaction() as conn:
        if not dead_letters.mark_replayed(conn, row["id"]):
            raise ValueError(f"dead letter {row['id']} was already replayed")
        parking.unpark(
            conn, employee, frnr=int(frnr) if frnr is not None else None, google_event_id=payload.get("google_event_id")
        )
        replayed = dead_letters.get(conn, row["id"])
    return dead_letters.to_json(returned(replayed))
