"""Last step of an employee's sync: save the Google sync token and close the run log row.

Runs only after every phase succeeded (the DAG's default trigger rule), so a failed or stopped run
leaves the old token in place and the next run reads the same Google changes again. A dry run
never moves the token (nothing was applied).
"""

from __future__ import annotations

import logging
from typing import Any

from include.calendar_sync.context import SyncContext
from include.hub import calendars as hub_calendars
from include.hub import plans, runs

log = logging.getLogger(__name__)


def finalize(ctx: SyncContext, plan_id: int) -> dict[str, Any]:
    with ctx.hub.transaction() as conn:
        stored = plans.load_plan(conn, plan_id)
        plan = stored.plan
        token_saved = False
        if not plan.dry_run and stored.sync_token:
            hub_calendars.save_sync_token(conn, stored.employee, stored.sync_token, full_sync=plan.google_complete)
            token_saved = True
        status = "dry_run" if plan.dry_run else "success"
        runs.add_run_counts(
            conn, stored.run_id, stored.employee, {"token_saved": token_saved}, status=status, error=None
        )
        row = runs.run_row(conn, stored.run_id, stored.employee)
    counts = dict(row["counts"]) if row else {}
    log.info("finalize %s: %s, sync token %s", stored.employee, status, "saved" if token_saved else "kept")
    return {"employee": stored.employee, "status": status, "token_saved": token_saved, "counts": counts}
