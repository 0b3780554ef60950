"""The run log (table sync_runs): a row per calendar run and employee (kind 'calendar'), and one per
party run (kind 'beteiligte'); counts as jsonb, status, error (ids only), start and finish."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from include.hub.db import HubConnection


def start_run(
    conn: HubConnection,
    run_id: str,
    employee: str,
    counts: dict[str, Any],
    status: str = "running",
    error: str | None = None,
) -> None:
    finished = status != "running"
    conn.execute(
        """INSERT INTO sync_runs (run_id, kind, employee, status, counts, error, finished_at)
           VALUES (%s, 'calendar', %s, %s, %s, %s, CASE WHEN %s THEN now() END)
           ON CONFLICT (run_id, kind, coalesce(employee, '')) DO UPDATE SET status = EXCLUDED.status,
               counts = EXCLUDED.counts, error = EXCLUDED.error, started_at = now(),
               finished_at = EXCLUDED.finished_at""",
        (run_id, employee, status, json.dumps(counts), error, finished),
    )


def add_run_counts(
    conn: HubConnection,
    run_id: str,
    employee: str,
    counts: dict[str, Any],
    *,
    status: str | None = None,
    error: str | None = None,
) -> None:
    """Merge counts (a phase's outcome) into the run row; optionally set status and error."""
    conn.execute(
        """UPDATE sync_runs SET counts = counts || %s::jsonb, status = coalesce(%s, status),
               error = CASE WHEN %s THEN %s ELSE error END,
               finished_at = CASE WHEN coalesce(%s, status) = 'running' THEN finished_at ELSE now() END
           WHERE run_id = %s AND kind = 'calendar' AND employee = %s""",
        (json.dumps(counts), status, status is not None, error, status, run_id, employee),
    )


def run_rows(conn: HubConnection, run_id: str) -> list[dict[str, Any]]:
    return list(
        conn.execute(
            "SELECT run_id, employee, status, counts, error, started_at, finished_at FROM sync_runs "
            "WHERE run_id = %s AND kind = 'calendar' ORDER BY employee",
            (run_id,),
        ).fetchall()
    )


def run_row(conn: HubConnection, run_id: str, employee: str) -> dict[str, Any] | None:
    """One employee's row of a calendar run (a finalize reads its own row, not the run's 1,000)."""
    return conn.execute(
        "SELECT run_id, employee, status, counts, error, started_at, finished_at FROM sync_runs "
        "WHERE run_id = %s AND kind = 'calendar' AND employee = %s",
        (run_id, employee),
    ).fetchone()


def phase_states(conn: HubConnection, run_id: str, employees: list[str]) -> dict[str, dict[str, Any]]:
    """Per employee of a unit: its run row's status and the phases it completed in this run
    (`counts.phases_done`, 0 before the first); employees without a row are left out."""
    rows = conn.execute(
        """SELECT employee, status, coalesce((counts->>'phases_done')::int, 0) AS phases_done FROM sync_runs
           WHERE run_id = %s AND kind = 'calendar' AND employee = ANY(%s)""",
        (run_id, employees),
    ).fetchall()
    return {r["employee"]: {"status": r["status"], "phases_done": int(r["phases_done"])} for r in rows}


def fail_run(conn: HubConnection, run_id: str, employee: str, error: str) -> None:
    """The employee's run failed (a safety stop stays a stop); the row is made if the planning never
    got as far as writing it."""
    conn.execute(
        """INSERT INTO sync_runs (run_id, kind, employee, status, counts, error, finished_at)
           VALUES (%s, 'calendar', %s, 'failed', '{}'::jsonb, %s, now())
           ON CONFLICT (run_id, kind, coalesce(employee, '')) DO UPDATE SET
               status = CASE WHEN sync_runs.status = 'stopped' THEN 'stopped' ELSE 'failed' END,
               error = CASE WHEN sync_runs.status = 'stopped' THEN sync_runs.error ELSE EXCLUDED.error END,
               finished_at = now()""",
        (run_id, employee, error),
    )


def previous_run_status(conn: HubConnection, employee: str, run_id: str) -> str | None:
    """The status of the employee's calendar run before `run_id` (None: there was none)."""
    row = conn.execute(
        """SELECT status FROM sync_runs WHERE kind = 'calendar' AND employee = %s AND run_id <> %s
               AND started_at < coalesce((SELECT started_at FROM sync_runs WHERE kind = 'calendar'
                                          AND employee = %s AND run_id = %s), now())
           ORDER BY started_at DESC LIMIT 1""",
        (employee, run_id, employee, run_id),
    ).fetchone()
    return str(row["status"]) if row else None


def calendar_rows_with_plans(conn: HubConnection, run_id: str) -> dict[str, dict[str, Any]]:
    """What an earlier try of this run's planning left: per employee its run row's status and plan."""
    rows = conn.execute(
        """SELECT r.employee, r.status, p.id AS plan_id, p.counts FROM sync_runs r
           LEFT JOIN sync_plans p ON p.run_id = r.run_id AND p.employee = r.employee
           WHERE r.run_id = %s AND r.kind = 'calendar'""",
        (run_id,),
    ).fetchall()
    return {r["employee"]: r for r in rows}


# -- party runs (kind 'beteiligte'): one row per beteiligte_sync run, counts summed over its tries ------
PARTY_KIND = "beteiligte"


def start_party_run(conn: HubConnection, run_id: str) -> None:
    """Open (or reopen, for a retry) the run's row; counts of earlier tries stay."""
    conn.execute(
        """INSERT INTO sync_runs (run_id, kind, employee, status, counts)
           VALUES (%s, %s, NULL, 'running', '{"tries": 1}'::jsonb)
           ON CONFLICT (run_id, kind, coalesce(employee, '')) DO UPDATE SET status = 'running',
               finished_at = NULL, error = NULL,
               counts = sync_runs.counts || jsonb_build_object('tries',
                        coalesce((sync_runs.counts->>'tries')::int, 0) + 1)""",
        (run_id, PARTY_KIND),
    )


def finish_party_run(
    conn: HubConnection, run_id: str, counts: Mapping[str, int], *, status: str, error: str | None = None
) -> None:
    """Close the row: add this try's counts to the row's, set the outcome."""
    row = conn.execute(
        "SELECT counts FROM sync_runs WHERE run_id = %s AND kind = %s AND employee IS NULL FOR UPDATE",
        (run_id, PARTY_KIND),
    ).fetchone()
    if row is None:  # the start was not recorded (hub down then): this try's row alone
        start_party_run(conn, run_id)
        row = {"counts": {"tries": 1}}
    total: dict[str, Any] = dict(row["counts"] if isinstance(row, dict) else row[0])
    for key, n in counts.items():
        total[key] = int(total.get(key) or 0) + int(n)
    conn.execute(
        "UPDATE sync_runs SET status = %s, error = %s, counts = %s::jsonb, finished_at = now() "
        "WHERE run_id = %s AND kind = %s AND employee IS NULL",
        (status, error, json.dumps(total), run_id, PARTY_KIND),
    )


def last_calendar_run(conn: HubConnection, employee: str) -> dict[str, Any] | None:
    """The employee's latest calendar run row: run id, status, error (ids only), times."""
    row = conn.execute(
        """SELECT run_id, status, error, started_at, finished_at FROM sync_runs
           WHERE kind = 'calendar' AND employee = %s ORDER BY started_at DESC, id DESC LIMIT 1""",
        (employee,),
    ).fetchone()
    return dict(row) if row else None
