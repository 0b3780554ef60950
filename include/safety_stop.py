"""The administrator's answer to a calendar safety stop (e.g. an employee emptied their synced calendar
in Google): one action with two choices, the same in the DAG's trigger form, the command line
(`kanzlei-sync calendar resolve-stop`) and the status view's buttons.

- `refill`: a calendar run for the employee with `refill_google`: what was deleted in Google is made
  again there from Advoware (which kept everything).
- `confirm`: a calendar run for the employee with `force_deletions`: the deletions are carried across.

Only the employee's latest calendar run may be answered, and only if it stopped. The run id is made
from the employee and the stopped run, so a second click or command for the same stop starts no
second run (Airflow answers 409 for a known run id). Nothing here imports Airflow.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from include.dag_ids import CALENDAR_SYNC_DAG
from include.hub import runs
from include.hub.db import HubConnection

ACTIONS: dict[str, dict[str, bool]] = {"refill": {"refill_google": True}, "confirm": {"force_deletions": True}}
LABELS = {"refill": "Refill Google from Advoware", "confirm": "Confirm the deletions"}


@dataclass(frozen=True)
class RunRequest:
    """A DAG run to start, as the CLI and the status view trigger it: a stop's answer here, a dead
    letter's replay in include/status/replay.py."""

    dag_id: str
    run_id: str
    conf: dict[str, Any]
    note: str


def stopped_run(conn: HubConnection, employee: str) -> dict[str, Any] | None:
    """The employee's latest calendar run if it stopped for safety (its run id and reason), else None."""
    last = runs.last_calendar_run(conn, employee)
    return last if last is not None and last["status"] == "stopped" else None


def stop_run(employee: str, action: str, stopped_run_id: str) -> RunRequest:
    if action not in ACTIONS:
        raise ValueError(f"unknown answer {action!r}: one of {', '.join(ACTIONS)}")
    digest = hashlib.sha256(f"{employee}\n{stopped_run_id}".encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9]", "_", employee)  # a Kürzel may hold letters Airflow's run ids refuse
    conf = {"employees": [employee], "full_content": False, **ACTIONS[action]}
    return RunRequest(
        CALENDAR_SYNC_DAG,
        f"{action}__calendar__{safe}__{digest}",
        conf,
        f"{LABELS[action]} for {employee} after the safety stop of run {stopped_run_id}",
    )
