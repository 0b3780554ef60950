"""The run log of the party sync: one `sync_runs` row of kind 'beteiligte' per `beteiligte_sync` run.

`drain` calls `started()` before its first claim and `finished(report, exc)` at its end, whatever
happened. A retried task drains again under the same run id: the row is reopened and the new try's
counts are added to the earlier ones (each try's acks are real writes), `tries` counts the tries.

The row holds numbers only: the drain report's counts (claimed, acked, requeued, retried, dead, stale,
dead_letters_moved, advoware_writes, batches, one count per action) and, for a drain that raised,
the exception's class (a driver's message can name hosts or users; the task log has the rest).
Writing the row never stops a drain: the work matters more than its record (a warning is logged).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from include.parties.drain import DrainReport

log = logging.getLogger(__name__)

KIND = "beteiligte"
_REPORT_COUNTS = ("batches", "claimed", "acked", "requeued", "retried", "dead", "stale", "dead_letters_moved",
                  "advoware_writes")


def report_counts(report: DrainReport) -> dict[str, int]:
    """The report's numbers, actions as their own keys (created, updated, unlinked, ...)."""
    counts = {k: int(getattr(report, k)) for k in _REPORT_COUNTS}
    counts.update({str(action): int(n) for action, n in report.actions.items() if action not in counts})
    return counts


def start(conn: psycopg.Connection, run_id: str) -> None:
    """Open (or reopen, for a retry) the run's row; counts of earlier tries stay."""
    conn.execute(
        """INSERT INTO sync_runs (run_id, kind, employee, status, counts)
           VALUES (%s, %s, NULL, 'running', '{"tries": 1}'::jsonb)
           ON CONFLICT (run_id, kind, coalesce(employee, '')) DO UPDATE SET status = 'running',
               finished_at = NULL, error = NULL,
               counts = sync_runs.counts || jsonb_build_object('tries',
                        coalesce((sync_runs.counts->>'tries')::int, 0) + 1)""",
        (run_id, KIND))


def finish(conn: psycopg.Connection, run_id: str, counts: Mapping[str, int], *, status: str,
           error: str | None = None) -> None:
    """Close the row: add this try's counts to the row's, set the outcome."""
    row = conn.execute("SELECT counts FROM sync_runs WHERE run_id = %s AND kind = %s AND employee IS NULL "
                       "FOR UPDATE", (run_id, KIND)).fetchone()
    if row is None:  # the start was not recorded (hub down then): this try's row alone
        start(conn, run_id)
        row = {"counts": {"tries": 1}}
    total: dict[str, Any] = dict(row["counts"] if isinstance(row, dict) else row[0])
    for key, n in counts.items():
        total[key] = int(total.get(key) or 0) + int(n)
    conn.execute("UPDATE sync_runs SET status = %s, error = %s, counts = %s::jsonb, finished_at = now() "
                 "WHERE run_id = %s AND kind = %s AND employee IS NULL",
                 (status, error, json.dumps(total), run_id, KIND))


class HubRunLog:
    """`drain`'s run log in the hub for one Airflow run id."""

    def __init__(self, dsn: str, run_id: str) -> None:
        self.dsn, self.run_id = dsn, run_id

    def started(self) -> None:
        self._write(lambda conn: start(conn, self.run_id))

    def finished(self, report: DrainReport, exc: BaseException | None) -> None:
        status, error = ("success", None) if exc is None else ("failed", f"drain raised {type(exc).__name__}")
        self._write(lambda conn: finish(conn, self.run_id, report_counts(report), status=status, error=error))

    def _write(self, fn: Any) -> None:
        from include.hub.db import connect

        try:
            with connect(self.dsn) as conn:
                fn(conn)
        except (psycopg.Error, OSError) as exc:
            log.warning("party run %s: run log not written (%s)", self.run_id, type(exc).__name__)


def hub_run_log(dsn: str, run_id: str | None) -> HubRunLog | None:
    """The run log of an Airflow run; None (no row) for a drain outside a run."""
    return HubRunLog(dsn, run_id) if run_id else None
