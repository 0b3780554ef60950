"""The status view's one write: replay a dead letter, as `kanzlei-sync dead-letters replay ID` does, and
start the run that carries it; plus the CSRF token of the page's replay forms.

Semantics (include/dead_letter_replay.py): a party dead letter's id goes back into the Redis work
queue (kind 'replay') and a `beteiligte_sync` run is triggered (run id `replay__beteiligte__<id>`);
a parked calendar item is released (its link starts again) and a calendar run for its employee is
triggered (include.airflow_api.calendar_retry_run: run id `replay__calendar__<id>`, as the gateway).
The letter is marked replayed before the trigger: if the trigger fails, the queue's next sweep or the
next scheduled calendar run carries it (the answer says so).

CSRF: the browser sends Airflow's `_token` cookie with any request to this origin, so a form post
needs proof that it came from a page we rendered for this user: an HMAC over the user's id and an
expiry, keyed with the host's secret. Nothing here imports Airflow: the host triggers the runs.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from include.airflow_api import calendar_retry_run
from include.dag_ids import BETEILIGTE_SYNC_DAG, CALENDAR_SYNC_DAG
from include.dead_letter_replay import replay as replay_letter
from include.hub import dead_letters
from include.hub.db import Hub, connect
from include.safety_stop import RunRequest

CSRF_TTL_S = 3600
_CSRF_CONTEXT = b"kanzlei-sync status view: replay form\n"


# -- CSRF ------------------------------------------------------------------------------------------
def _mac(key: bytes, user_id: str, expires: int) -> str:
    msg = _CSRF_CONTEXT + f"{user_id}\n{expires}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def csrf_token(key: bytes, user_id: str, *, now: float | None = None, ttl_s: int = CSRF_TTL_S) -> str:
    expires = int((now if now is not None else time.time()) + ttl_s)
    return f"{expires}.{_mac(key, user_id, expires)}"


def csrf_valid(key: bytes, user_id: str, token: str | None, *, now: float | None = None) -> bool:
    """The token was made for this user with this key and has not expired."""
    if not token or "." not in token:
        return False
    expires_s, mac = token.split(".", 1)
    if not expires_s.isdigit() or int(expires_s) < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(mac, _mac(key, user_id, int(expires_s)))


def same_origin(headers: Any) -> bool:
    """The browser's own word on where the form was: Sec-Fetch-Site (every current browser sends it),
    else Origin against Host. A request with neither (not a browser form) relies on the token."""
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == headers.get("host")


# -- replay ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Replayed:
    dead_letter: dict[str, Any]  # ids and state (to_json of the row, without payload)
    run: RunRequest | None
    triggered: bool  # False: the run existed already, or the trigger failed (then `trigger_error`)
    trigger_error: str | None = None


def target_dag(row: dict[str, Any]) -> str:
    """The DAG whose run a replay of this dead letter starts (what the user must be allowed to trigger)."""
    return CALENDAR_SYNC_DAG if row["source"] == dead_letters.CALENDAR_SOURCE else BETEILIGTE_SYNC_DAG


def lookup(dsn: str, dead_letter_id: int) -> dict[str, Any] | None:
    with connect(dsn) as conn:
        return dead_letters.get(conn, dead_letter_id)


def run_for(row: dict[str, Any]) -> RunRequest | None:
    if row["source"] == dead_letters.CALENDAR_SOURCE:
        employee = (row.get("payload") or {}).get("employee")
        if not employee:
            return None
        dag_id, run_id, conf, note = calendar_retry_run(employee, int(row["id"]))
        return RunRequest(dag_id, run_id, conf, note)
    return RunRequest(
        BETEILIGTE_SYNC_DAG, f"replay__beteiligte__{row['id']}", {}, f"replay of dead letter {row['id']} (status view)"
    )


def replay(
    dsn: str, dead_letter_id: int, enqueue: Callable[[list[str]], Any], trigger: Callable[[RunRequest], bool]
) -> Replayed:
    """Replay, then trigger (`trigger` returns False when the run existed). Raises LookupError (no
    such letter) or ValueError (already replayed, nothing to replay) before anything changed."""
    with Hub(dsn) as hub:
        row = replay_letter(hub, dead_letter_id, enqueue)
    ids = {k: row.get(k) for k in ("id", "source", "entity_id", "created_at", "replayed_at")}
    run = run_for(row)
    if run is None:
        return Replayed(ids, None, False)
    try:
        created = trigger(run)
    except Exception as exc:  # Airflow's database busy or the DAG missing: the next run carries it
        return Replayed(ids, run, False, type(exc).__name__)
    return Replayed(ids, run, created)
