"""Hub store of the calendar sync: links (calendar_links), Advoware create intents
(advoware_create_intents), stored plans (sync_plans) and the run log (sync_runs).

Functions take an open psycopg connection with dict rows (include.hub.db.connect) so the caller
decides the transaction: the executor writes each item's outcome in a transaction of its own.

Link rows: a complete link has both ids. A "half" row (only frNr, or only the Google event id)
records the attempts and last error of an item whose create has not succeeded yet; the planner
ignores half rows, and the successful create completes the same row.

Parked items: an item that failed `SYNC_CALENDAR_MAX_ATTEMPTS` times gets an open dead letter
(source 'calendar_sync', payload {employee, frnr, google_event_id, action}); prepare leaves it out of
the plan until `unpark` (the dead letter's replay) starts it again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from include.calendar_engine.plan import HubLink, Plan
from include.hub import calendars as hub_calendars
from include.hub import dead_letters

_LINK_COLUMNS = ("employee, frnr, google_event_id, advoware_fingerprint, google_fingerprint, "
                 "advoware_changed_at, google_updated, status, span_start, span_end")


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


def _link(row: dict[str, Any]) -> HubLink:
    values = dict(row)
    values["span_start"], values["span_end"] = _iso(values["span_start"]), _iso(values["span_end"])
    return HubLink(**values)


# -- links -----------------------------------------------------------------------------------------
def load_links(conn: psycopg.Connection, employee: str) -> list[HubLink]:
    """Every row of the employee (the planner skips deleted and half rows itself)."""
    rows = conn.execute(f"SELECT {_LINK_COLUMNS} FROM calendar_links WHERE employee = %s ORDER BY id",
                        (employee,)).fetchall()
    return [_link(r) for r in rows]


def find_link(conn: psycopg.Connection, employee: str, *, frnr: int | None = None,
              google_event_id: str | None = None) -> dict[str, Any] | None:
    """The row holding either id (the frNr row first), locked for the caller's transaction."""
    rows = _matching(conn, employee, frnr, google_event_id)
    return rows[0] if rows else None


def _matching(conn: psycopg.Connection, employee: str, frnr: int | None,
              google_event_id: str | None) -> list[dict[str, Any]]:
    if frnr is None and google_event_id is None:
        return []
    return list(conn.execute(
        """SELECT * FROM calendar_links
           WHERE employee = %s AND ((%s::bigint IS NOT NULL AND frnr = %s)
                                    OR (%s::text IS NOT NULL AND google_event_id = %s))
           ORDER BY (frnr IS NOT DISTINCT FROM %s) DESC, id FOR UPDATE""",
        (employee, frnr, frnr, google_event_id, google_event_id, frnr)).fetchall())


def link_rows(conn: psycopg.Connection, employee: str) -> list[dict[str, Any]]:
    """Every row of the employee as find_link returns them (unlocked), for `first_matching`."""
    return list(conn.execute("SELECT * FROM calendar_links WHERE employee = %s ORDER BY id",
                             (employee,)).fetchall())


def first_matching(rows: list[dict[str, Any]], *, frnr: int | None = None,
                   google_event_id: str | None = None) -> dict[str, Any] | None:
    """find_link over rows read before (`link_rows`): the frNr row first, then by id."""
    if frnr is None and google_event_id is None:
        return None
    hits = [r for r in rows if (frnr is not None and r["frnr"] == frnr)
            or (google_event_id is not None and r["google_event_id"] == google_event_id)]
    hits.sort(key=lambda r: (r["frnr"] != frnr, r["id"]))
    return hits[0] if hits else None


@dataclass(frozen=True)
class LinkState:
    """What a successful action leaves in the hub."""

    frnr: int | None
    google_event_id: str | None
    advoware_fingerprint: str | None = None
    google_fingerprint: str | None = None
    advoware_changed_at: str | None = None
    google_updated: str | None = None
    google_etag: str | None = None
    span_start: str | None = None
    span_end: str | None = None
    status: str = "linked"


def save_link(conn: psycopg.Connection, employee: str, state: LinkState) -> int:
    """Insert or complete the employee's row for these ids (merging a half row into it)."""
    rows = _matching(conn, employee, state.frnr, state.google_event_id)
    keep = rows[0]["id"] if rows else None
    for extra in rows[1:]:  # a half row of the other side: its history is superseded by this link
        conn.execute("DELETE FROM calendar_links WHERE id = %s", (extra["id"],))
    values = (state.frnr, state.google_event_id, state.advoware_fingerprint, state.google_fingerprint,
              state.advoware_changed_at, state.google_updated, state.google_etag, state.status,
              state.span_start, state.span_end)
    if keep is None:
        row = conn.execute(
            """INSERT INTO calendar_links (employee, frnr, google_event_id, advoware_fingerprint,
                   google_fingerprint, advoware_changed_at, google_updated, google_etag, status,
                   span_start, span_end)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (employee, *values)).fetchone()
        return int(row["id"])  # type: ignore[index]
    conn.execute(
        """UPDATE calendar_links SET frnr = %s, google_event_id = %s, advoware_fingerprint = %s,
               google_fingerprint = %s, advoware_changed_at = %s, google_updated = %s,
               google_etag = coalesce(%s, google_etag), status = %s,
               span_start = coalesce(%s, span_start), span_end = coalesce(%s, span_end),
               attempts = 0, last_error = NULL, updated_at = now()
           WHERE id = %s""",
        (*values, keep))
    return int(keep)


def mark_deleted(conn: psycopg.Connection, employee: str, *, frnr: int | None,
                 google_event_id: str | None) -> int:
    """Both sides gone (or deleted by us): the row stays as history with status 'deleted'."""
    rows = _matching(conn, employee, frnr, google_event_id)
    for row in rows:
        conn.execute("UPDATE calendar_links SET status = 'deleted', attempts = 0, last_error = NULL, "
                     "updated_at = now() WHERE id = %s", (row["id"],))
    return len(rows)


def record_failure(conn: psycopg.Connection, employee: str, *, frnr: int | None,
                   google_event_id: str | None, error: str, status: str = "failed",
                   known_link: bool = True) -> int:
    """Count a failed attempt; returns the item's attempts so far (0: nothing recorded). Without a
    row yet, a half row keeps the count (never a full link: that would make the planner believe the
    item exists on both sides)."""
    rows = _matching(conn, employee, frnr, google_event_id)
    if rows:
        row = conn.execute(
            """UPDATE calendar_links SET attempts = attempts + 1, last_error = %s,
                   status = CASE WHEN status = 'deleted' THEN status ELSE %s END, updated_at = now()
               WHERE id = %s RETURNING attempts""", (error[:500], status, rows[0]["id"])).fetchone()
        return int(row["attempts"])  # type: ignore[index]
    if not known_link:
        # one side only: the frNr when there is one, else the Google id
        if frnr is not None:
            google_event_id = None
        conn.execute(
            """INSERT INTO calendar_links (employee, frnr, google_event_id, status, attempts, last_error)
               VALUES (%s, %s, %s, %s, 1, %s)""", (employee, frnr, google_event_id, status, error[:500]))
        return 1
    return 0


# -- parked items (dead letters of source 'calendar_sync') ---------------------------------------
DEAD_LETTER_SOURCE = dead_letters.CALENDAR_SOURCE
REPLAYED = "replayed"  # last_error of a replayed item until it is written or fails again


@dataclass(frozen=True)
class Parked:
    """An item that failed `calendar_max_attempts` times: left out of the plans until replayed."""

    dead_letter_id: int
    employee: str
    frnr: int | None
    google_event_id: str | None
    action: str | None


def park(conn: psycopg.Connection, employee: str, *, frnr: int | None, google_event_id: str | None,
         kind: str, error: str, attempts: int) -> int:
    """Park a failing item: its link stays 'failed' and an open dead letter (ids only, never a
    text) lets a person see and replay it. Returns the dead letter's id (an open one is reused)."""
    entity = f"{employee}:{frnr if frnr is not None else google_event_id}"
    open_row = conn.execute(
        "SELECT id FROM dead_letters WHERE source = %s AND entity_id = %s AND replayed_at IS NULL "
        "ORDER BY id LIMIT 1", (DEAD_LETTER_SOURCE, entity)).fetchone()
    if open_row is not None:
        return int(open_row["id"])
    for row in _matching(conn, employee, frnr, google_event_id):
        conn.execute("UPDATE calendar_links SET status = 'failed', updated_at = now() "
                     "WHERE id = %s AND status <> 'deleted'", (row["id"],))
    reason = (f"{kind} frNr={frnr} event={google_event_id} failed {attempts} times, "
              f"last: {error}")
    payload = {"employee": employee, "frnr": frnr, "google_event_id": google_event_id, "action": kind}
    return dead_letters.add(conn, source=DEAD_LETTER_SOURCE, reason=reason, entity_id=entity,
                            payload=payload, attempts=attempts)


def parked_items(conn: psycopg.Connection, employee: str) -> list[Parked]:
    """The employee's open calendar dead letters (oldest first)."""
    rows = conn.execute(
        """SELECT id, payload FROM dead_letters
           WHERE source = %s AND replayed_at IS NULL AND payload->>'employee' = %s ORDER BY id""",
        (DEAD_LETTER_SOURCE, employee)).fetchall()
    out = []
    for r in rows:
        p = r["payload"] or {}
        frnr = p.get("frnr")
        out.append(Parked(int(r["id"]), employee, int(frnr) if frnr is not None else None,
                          p.get("google_event_id"), p.get("action")))
    return out


def unpark(conn: psycopg.Connection, employee: str, *, frnr: int | None, google_event_id: str | None) -> int:
    """Replay of a parked item: its rows start again (attempts 0, 'pending' unless deleted) marked
    REPLAYED, which makes the next prepare read the employee's Google window in full (the item's
    Google side may have been read, and passed over, while it was parked; a run in flight may still
    save a newer sync token). Without a row the sync token is dropped instead. Returns the rows."""
    rows = _matching(conn, employee, frnr, google_event_id)
    for row in rows:
        conn.execute("""UPDATE calendar_links SET attempts = 0, last_error = %s,
                            status = CASE WHEN status = 'deleted' THEN status ELSE 'pending' END,
                            updated_at = now() WHERE id = %s""", (REPLAYED, row["id"]))
    if not rows:
        hub_calendars.clear_sync_token(conn, employee)
    return len(rows)


def replayed_links(conn: psycopg.Connection, employee: str) -> list[dict[str, Any]]:
    """Rows replayed and not yet written or failed again (saving or failing clears the mark)."""
    return list(conn.execute("SELECT id, frnr, google_event_id FROM calendar_links WHERE employee = %s "
                             "AND last_error = %s ORDER BY id", (employee, REPLAYED)).fetchall())


def clear_replayed(conn: psycopg.Connection, ids: list[int]) -> None:
    conn.execute("UPDATE calendar_links SET last_error = NULL WHERE id = ANY(%s) AND last_error = %s",
                 (ids, REPLAYED))


def linked_frnrs(conn: psycopg.Connection, employee: str) -> set[int]:
    rows = conn.execute("SELECT frnr FROM calendar_links WHERE employee = %s AND frnr IS NOT NULL "
                        "AND google_event_id IS NOT NULL AND status <> 'deleted'", (employee,)).fetchall()
    return {int(r["frnr"]) for r in rows}


def failures(conn: psycopg.Connection, employee: str | None = None) -> list[dict[str, Any]]:
    sql = ("SELECT employee, frnr, google_event_id, status, attempts, last_error FROM calendar_links "
           "WHERE status IN ('failed', 'conflict')")
    args: tuple[Any, ...] = ()
    if employee:
        sql += " AND employee = %s"
        args = (employee,)
    return list(conn.execute(sql + " ORDER BY employee, id", args).fetchall())


# -- Advoware create intents ----------------------------------------------------------------------
@dataclass(frozen=True)
class Intent:
    id: int
    employee: str
    google_event_id: str
    fingerprint: str
    frnr: int | None
    status: str
    fresh: bool  # written by this call (no earlier attempt exists)


def open_intent(conn: psycopg.Connection, employee: str, google_event_id: str, fingerprint: str) -> Intent:
    """Write (or find) the intent to create the Advoware twin of a Google event."""
    row = conn.execute(
        """INSERT INTO advoware_create_intents (employee, google_event_id, fingerprint)
           VALUES (%s, %s, %s) ON CONFLICT (employee, google_event_id) DO NOTHING
           RETURNING id, employee, google_event_id, fingerprint, frnr, status""",
        (employee, google_event_id, fingerprint)).fetchone()
    if row is not None:
        return Intent(**row, fresh=True)
    row = conn.execute(
        "SELECT id, employee, google_event_id, fingerprint, frnr, status FROM advoware_create_intents "
        "WHERE employee = %s AND google_event_id = %s", (employee, google_event_id)).fetchone()
    assert row is not None
    if row["status"] == "abandoned" or (row["status"] == "done" and row["frnr"] is None):
        row = conn.execute(
            """UPDATE advoware_create_intents SET status = 'open', fingerprint = %s, frnr = NULL,
                   updated_at = now() WHERE id = %s
               RETURNING id, employee, google_event_id, fingerprint, frnr, status""",
            (fingerprint, row["id"])).fetchone()
        return Intent(**row, fresh=True)  # type: ignore[arg-type]
    return Intent(**row, fresh=False)


def complete_intent(conn: psycopg.Connection, intent_id: int, frnr: int) -> None:
    conn.execute("UPDATE advoware_create_intents SET frnr = %s, status = 'done', updated_at = now() "
                 "WHERE id = %s", (frnr, intent_id))


def finish_intent(conn: psycopg.Connection, intent_id: int) -> None:
    """The link is stored (in the same transaction): the intent has served its purpose, and a later
    create for the same Google event (after a deletion) starts afresh."""
    conn.execute("DELETE FROM advoware_create_intents WHERE id = %s", (intent_id,))


def open_intents(conn: psycopg.Connection, employee: str) -> list[dict[str, Any]]:
    return list(conn.execute("SELECT * FROM advoware_create_intents WHERE employee = %s AND status = 'open' "
                             "ORDER BY id", (employee,)).fetchall())


# -- plans -----------------------------------------------------------------------------------------
def save_plan(conn: psycopg.Connection, run_id: str, plan: Plan, *, sync_token: str | None) -> int:
    """Store (or replace, when prepare is retried) the plan of (run, employee); returns its id."""
    row = conn.execute(
        """INSERT INTO sync_plans (run_id, employee, dry_run, counts, plan, google_sync_token)
           VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (run_id, employee) DO UPDATE SET dry_run = EXCLUDED.dry_run,
               counts = EXCLUDED.counts, plan = EXCLUDED.plan,
               google_sync_token = EXCLUDED.google_sync_token, created_at = now()
           RETURNING id""",
        (run_id, plan.employee, plan.dry_run, json.dumps(plan.counts()), plan.to_json(), sync_token),
    ).fetchone()
    return int(row["id"])  # type: ignore[index]


@dataclass(frozen=True)
class StoredPlan:
    id: int
    run_id: str
    employee: str
    plan: Plan
    sync_token: str | None
    created_at: datetime


def load_plan(conn: psycopg.Connection, plan_id: int) -> StoredPlan:
    row = conn.execute("SELECT id, run_id, employee, plan, google_sync_token, created_at FROM sync_plans "
                       "WHERE id = %s", (plan_id,)).fetchone()
    if row is None:
        raise LookupError(f"sync plan {plan_id} not found")
    data = row["plan"] if isinstance(row["plan"], dict) else json.loads(row["plan"])
    return StoredPlan(row["id"], row["run_id"], row["employee"], Plan.from_dict(data),
                      row["google_sync_token"], row["created_at"])


# -- run log ---------------------------------------------------------------------------------------
def start_run(conn: psycopg.Connection, run_id: str, employee: str, counts: dict[str, Any],
              status: str = "running", error: str | None = None) -> None:
    finished = status != "running"
    conn.execute(
        """INSERT INTO sync_runs (run_id, kind, employee, status, counts, error, finished_at)
           VALUES (%s, 'calendar', %s, %s, %s, %s, CASE WHEN %s THEN now() END)
           ON CONFLICT (run_id, kind, coalesce(employee, '')) DO UPDATE SET status = EXCLUDED.status,
               counts = EXCLUDED.counts, error = EXCLUDED.error, started_at = now(),
               finished_at = EXCLUDED.finished_at""",
        (run_id, employee, status, json.dumps(counts), error, finished))


def add_run_counts(conn: psycopg.Connection, run_id: str, employee: str, counts: dict[str, Any], *,
                   status: str | None = None, error: str | None = None) -> None:
    """Merge counts (a phase's outcome) into the run row; optionally set status and error."""
    conn.execute(
        """UPDATE sync_runs SET counts = counts || %s::jsonb, status = coalesce(%s, status),
               error = CASE WHEN %s THEN %s ELSE error END,
               finished_at = CASE WHEN coalesce(%s, status) = 'running' THEN finished_at ELSE now() END
           WHERE run_id = %s AND kind = 'calendar' AND employee = %s""",
        (json.dumps(counts), status, status is not None, error, status, run_id, employee))


def run_rows(conn: psycopg.Connection, run_id: str) -> list[dict[str, Any]]:
    return list(conn.execute(
        "SELECT run_id, employee, status, counts, error, started_at, finished_at FROM sync_runs "
        "WHERE run_id = %s AND kind = 'calendar' ORDER BY employee", (run_id,)).fetchall())


def previous_run_status(conn: psycopg.Connection, employee: str, run_id: str) -> str | None:
    """The status of the employee's calendar run before `run_id` (None: there was none)."""
    row = conn.execute(
        """SELECT status FROM sync_runs WHERE kind = 'calendar' AND employee = %s AND run_id <> %s
               AND started_at < coalesce((SELECT started_at FROM sync_runs WHERE kind = 'calendar'
                                          AND employee = %s AND run_id = %s), now())
           ORDER BY started_at DESC LIMIT 1""", (employee, run_id, employee, run_id)).fetchone()
    return str(row["status"]) if row else None
