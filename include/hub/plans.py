"""Stored plans (table sync_plans): one per run and employee, the executor's input by id.

The plan is stored as `Plan.to_dict()` (format 2, each action `{"kind": ..., <its fields>}`); a row
of format 1 (before typed actions) is read as well, and migration 0006 rewrites such rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from include.calendar_engine.plan import Plan
from include.hub.db import HubConnection


def _dict(row: Any) -> dict[str, Any]:
    """A row of the hub's connections (they make dict rows; psycopg's default type says tuple)."""
    return cast(dict[str, Any], row)


def save_plan(conn: HubConnection, run_id: str, plan: Plan, *, sync_token: str | None) -> int:
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
    return int(_dict(row)["id"])


@dataclass(frozen=True)
class StoredPlan:
    id: int
    run_id: str
    employee: str
    plan: Plan
    sync_token: str | None
    created_at: datetime


def load_plan(conn: HubConnection, plan_id: int) -> StoredPlan:
    found = conn.execute(
        "SELECT id, run_id, employee, plan, google_sync_token, created_at FROM sync_plans WHERE id = %s", (plan_id,)
    ).fetchone()
    if found is None:
        raise LookupError(f"sync plan {plan_id} not found")
    row = _dict(found)
    data = row["plan"] if isinstance(row["plan"], dict) else json.loads(row["plan"])
    return StoredPlan(
        row["id"], row["run_id"], row["employee"], Plan.from_dict(data), row["google_sync_token"], row["created_at"]
    )


def run_reports(conn: HubConnection, run_id: str) -> list[dict[str, Any]]:
    """The reports of every plan of a run (ids and kinds only: never the plan's bodies)."""
    rows = conn.execute(
        "SELECT plan->'reports' AS reports FROM sync_plans WHERE run_id = %s ORDER BY employee", (run_id,)
    ).fetchall()
    return [r for row in rows for r in (_dict(row)["reports"] or [])]


def standing_plan(conn: HubConnection, run_id: str, employee: str) -> int | None:
    """The plan made for `employee` in this run and still standing (not a safety stop)."""
    row = conn.execute(
        """SELECT p.id FROM sync_plans p JOIN sync_runs r ON r.run_id = p.run_id AND r.employee = p.employee
           AND r.kind = 'calendar' WHERE p.run_id = %s AND p.employee = %s AND r.status <> 'stopped'""",
        (run_id, employee),
    ).fetchone()
    return int(_dict(row)["id"]) if row else None
