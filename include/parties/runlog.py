"""The run log of the party sync: one `sync_runs` row of kind 'beteiligte' per `beteiligte_sync` run.

`drain` calls `started()` before its first claim and `finished(report.counts(), exc)` at its end, whatever
happened. A retried task drains again under the same run id: the row is reopened and the new try's
counts are added to the earlier ones (each try's acks are real writes), `tries` counts the tries.

The row holds numbers only: the drain report's counts (claimed, acked, requeued, retried, dead, stale,
dead_letters_moved, advoware_writes, batches, one count per action) and, for a drain that raised,
the exception's class (a driver's message can name hosts or users; the task log has the rest).
Writing the row never stops a drain: the work matters more than its record (a warning is logged).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg

from include.hub import runs
from include.hub.db import Hub

log = logging.getLogger(__name__)


class HubRunLog:
    """`drain`'s run log in the hub for one Airflow run id."""

    def __init__(self, hub: Hub, run_id: str) -> None:
        self.hub, self.run_id = hub, run_id

    def started(self) -> None:
        self._write(lambda conn: runs.start_party_run(conn, self.run_id))

    def finished(self, counts: Mapping[str, int], exc: BaseException | None) -> None:
        status, error = ("success", None) if exc is None else ("failed", f"drain raised {type(exc).__name__}")
        self._write(lambda conn: runs.finish_party_run(conn, self.run_id, dict(counts), status=status, error=error))

    def _write(self, fn: Any) -> None:
        try:
            with self.hub.transaction() as conn:
                fn(conn)
        except (psycopg.Error, OSError) as exc:
            log.warning("party run %s: run log not written (%s)", self.run_id, type(exc).__name__)


def hub_run_log(hub: Hub, run_id: str | None) -> HubRunLog | None:
    """The run log of an Airflow run; None (no row) for a drain outside a run."""
    return HubRunLog(hub, run_id) if run_id else None
