"""The demo parts of the devstack: seeding the sandbox firm, registering EspoCRM's webhooks, Airflow
pools, and the scenario `make demo` plays once everything is up.

Only used in sandbox mode (SANDBOX_MODE=true); with real services nothing here runs. Output names ids
and counts only, never party or appointment content.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from include.dag_ids import CALENDAR_SYNC_DAG
from include.retry import RetryPolicy
from include.settings import Settings

Say = Callable[[str], None]
T = TypeVar("T")


def _airflow_busy(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


# `airflow standalone` keeps its metadata in SQLite: while the scheduler writes, the REST API answers
# 500 ("Database error"). Six attempts over about half a minute at most.
_AIRFLOW_BUSY = RetryPolicy(attempts=6, base_s=0.5, max_s=8.0, retryable=_airflow_busy)


def airflow_retrying(fn: Callable[[], T]) -> T:
    """Run `fn` (idempotent calls of Airflow's REST API) again while Airflow answers 5xx or cannot be
    reached; the last failure is raised."""
    return _AIRFLOW_BUSY.call(fn)


# Small on purpose: the demo must come up quickly on a laptop.
SEEDS: dict[str, dict[str, int]] = {
    "advoware": {"seed": 1, "employees": 4, "appointments_per_employee": 20},
    "google": {"seed": 1, "employees": 4},
    "espocrm": {"seed": 1, "parties": 10},
}
# Sizes of the API pools the calendar DAG's tasks run in (env DEVSTACK_POOL_<NAME>=n overrides).
POOLS: dict[str, int] = {"google_calendar_api": 4, "advoware_api": 4}
WEBHOOK_FILE = "espocrm-webhooks.json"  # in the run dir, 0600: the registered webhook ids and secrets
# The queue and token caches of a previous demo refer to sandbox state that died with the sandbox.
STALE_REDIS_PATTERNS = ("vmh:webhook:*", "vmh:airflow:*", "advoware:token:*", "gcal:ratelimit:*")


def sandbox_urls(ports: dict[str, int]) -> dict[str, str]:
    return {
        "advoware": f"http://127.0.0.1:{ports['SANDBOX_ADVOWARE_PORT']}",
        "google": f"http://127.0.0.1:{ports['SANDBOX_GOOGLE_PORT']}",
        "espocrm": f"http://127.0.0.1:{ports['SANDBOX_ESPOCRM_PORT']}",
    }


# -- a freshly started sandbox ------------------------------------------------------------------------
def reset_previous_demo(settings: Settings, say: Say) -> None:
    """The sandbox keeps its state in memory: after a restart the hub's links and the queue of the
    last demo point at nothing (the safety stops would refuse the sync). Sandbox mode only."""
    import psycopg
    import redis

    from include.airflow_env import masked_url

    pg = settings.postgres
    say(
        f"the sandbox starts empty: clearing the hub tables of database {pg.db} on {pg.host}:{pg.port} "
        f"(POSTGRES_DB) and the queue and token keys in Redis {masked_url(settings.redis_url)} (REDIS_URL)"
    )
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    removed = 0
    try:
        for pattern in STALE_REDIS_PATTERNS:
            keys = list(client.scan_iter(match=pattern, count=500))
            for i in range(0, len(keys), 500):
                removed += int(client.delete(*keys[i : i + 500]))
    finally:
        client.close()
    say(f"cleared {len(tables)} hub tables of {pg.db} and {removed} Redis keys of a previous demo")


def seed_sandboxes(urls: dict[str, str], say: Say) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with httpx.Client(timeout=60) as http:
        for name, body in SEEDS.items():
            r = http.post(f"{urls[name]}/_sandbox/seed", json=body)
            r.raise_for_status()
            out[name] = r.json()
    say(
        f"sandbox seeded: Advoware {SEEDS['advoware']['employees']} employees x "
        f"{SEEDS['advoware']['appointments_per_employee']} appointments, Google "
        f"{SEEDS['google']['employees']} accounts, EspoCRM {SEEDS['espocrm']['parties']} parties"
    )
    return out


# -- webhooks ---------------------------------------------------------------------------------------
def _read_webhook_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and data.get("secret") else None
    except (OSError, ValueError):
        return None


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def webhook_secret(run_dir: Path) -> str | None:
    """ESPOCRM_WEBHOOK_SECRET for the gateway (`id=secret,...`), if `up` registered the webhooks."""
    data = _read_webhook_file(run_dir / WEBHOOK_FILE)
    return str(data["secret"]) if data else None


def ensure_webhooks(settings: Settings, run_dir: Path, gateway_url: str, say: Say) -> tuple[str, bool]:
    """EspoCRM's create/update/delete webhooks point at the gateway; answers (secret, newly registered).

    Registered through the real command (`kanzlei-sync register-webhooks`, skipOwn), whose printed
    `ESPOCRM_WEBHOOK_SECRET=` line is kept in the run dir (not in the user's .env) so a restarted
    gateway gets the same secrets. Kept webhooks are reused; stale ones to this gateway are removed.
    """
    from include import cli
    from include.espocrm.client import EspoCrmClient

    path = run_dir / WEBHOOK_FILE
    with EspoCrmClient.from_settings(settings.espocrm) as espo:
        hooks = [h for h in espo.list_webhooks() if str(h.get("url", "")).startswith(gateway_url + "/")]
        saved = _read_webhook_file(path)
        if saved and saved.get("gateway_url") == gateway_url:
            wanted = {pair.split("=", 1)[0] for pair in str(saved["secret"]).split(",")}
            if wanted <= {h["id"] for h in hooks}:
                return str(saved["secret"]), False
        for hook in hooks:
            espo.delete_webhook(hook["id"])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["register-webhooks", "--gateway-url", gateway_url], settings)
    lines = [ln for ln in printed.getvalue().splitlines() if ln.startswith("ESPOCRM_WEBHOOK_SECRET=")]
    if code != 0 or not lines:
        raise RuntimeError("kanzlei-sync register-webhooks printed no ESPOCRM_WEBHOOK_SECRET line")
    secret = lines[-1].split("=", 1)[1]
    _write_private(
        path,
        json.dumps({"gateway_url": gateway_url, "secret": secret, "registered_at": time.strftime("%Y-%m-%dT%H:%M:%S")}),
    )
    ids = [pair.split("=", 1)[0] for pair in secret.split(",")]
    say(f"EspoCRM webhooks registered (skipOwn) -> {gateway_url}: {', '.join(ids)} (secrets in {path})")
    return secret, True


# -- Airflow ----------------------------------------------------------------------------------------
def pool_sizes() -> dict[str, int]:
    return {name: int(os.environ.get(f"DEVSTACK_POOL_{name.upper()}", size)) for name, size in POOLS.items()}


def ensure_pools(airflow_url: str, token: str, say: Say) -> dict[str, int]:
    """Create (or resize) the API pools through the REST API; idempotent."""
    headers = {"Authorization": f"Bearer {token}"}
    sizes = pool_sizes()
    with httpx.Client(base_url=airflow_url, headers=headers, timeout=15) as http:
        for name, slots in sizes.items():
            body = {
                "name": name,
                "slots": slots,
                "include_deferred": False,
                "description": "calendar sync: concurrent calls to this API",
            }
            r = http.post("/api/v2/pools", json=body)
            if r.status_code == 409:
                r = http.patch(
                    f"/api/v2/pools/{name}",
                    params={"update_mask": "slots"},
                    json={"pool": name, "slots": slots, "include_deferred": False},
                )
            r.raise_for_status()
    say("Airflow pools: " + ", ".join(f"{n}={s}" for n, s in sizes.items()))
    return sizes


# -- the scenario ---------------------------------------------------------------------------------------
def _delivery_summary(espocrm_url: str) -> str:
    r = httpx.get(f"{espocrm_url}/_sandbox/webhooks/log", timeout=15)
    r.raise_for_status()
    log = r.json()["deliveries"]
    results: dict[str, int] = {}
    for entry in log:
        results[entry["result"]] = results.get(entry["result"], 0) + 1
    items = sum(int(e["items"]) for e in log if e["result"] == "delivered")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(results.items()))
    return f"EspoCRM webhook sender: {len(log)} batches ({outcomes}), {items} items delivered"


def run_party_part(settings: Settings, urls: dict[str, str], gateway_url: str, say: Say) -> dict[str, Any]:
    from devstack.party_demo import run_party_demo

    say("\n== parties: EspoCRM -> webhooks -> gateway -> beteiligte_sync -> Advoware")
    summary = run_party_demo(urls["espocrm"], gateway_url, settings=settings, out=say, timeout_s=240.0)
    say(_delivery_summary(urls["espocrm"]))
    return summary


def _calendar_run(
    settings: Settings, gateway_url: str, airflow_url: str, body: dict[str, Any], say: Say, timeout_s: float
) -> str:
    """Start a run through the gateway's POST /advoware/calendar/sync and wait until it ends."""
    from include.airflow_api import AirflowApi

    token = settings.gateway.api_token.get_secret_value()
    r = httpx.post(
        f"{gateway_url}/advoware/calendar/sync", json=body, timeout=30, headers={"Authorization": f"Bearer {token}"}
    )
    if r.status_code not in (200, 202):
        raise RuntimeError(f"POST /advoware/calendar/sync answered {r.status_code}: {r.text[:300]}")
    run_id = str(r.json()["dag_run_id"])
    say(f"calendar: run {run_id} started through the gateway ({r.json().get('url')})")
    api = AirflowApi(
        airflow_url, settings.airflow_api.username, settings.airflow_api.password.get_secret_value(), timeout_s=30
    )
    started = last_note = time.monotonic()
    try:
        while True:
            run = api.get_run(CALENDAR_SYNC_DAG, run_id)
            if run["state"] in ("success", "failed"):
                break
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"calendar run {run_id} still {run['state']} after {timeout_s:.0f}s")
            if time.monotonic() - last_note > 15:
                tis = (
                    api.request(
                        "GET",
                        f"/api/v2/dags/advoware_calendar_sync/dagRuns/{run_id}/taskInstances",
                        params={"limit": 1000},
                    )
                    .json()
                    .get("task_instances", [])
                )
                done = sum(t["state"] in ("success", "failed", "skipped", "upstream_failed") for t in tis)
                say(f"calendar: run {run['state']}, {done}/{len(tis)} tasks done, {time.monotonic() - started:.0f}s")
                last_note = time.monotonic()
            time.sleep(2)
    finally:
        api.close()
    say(f"calendar: run {run['state']} after {time.monotonic() - started:.0f}s")
    return run_id


def _wait_for_scheduled_runs(settings: Settings, airflow_url: str, say: Say, timeout_s: float) -> list[str]:
    """Let a running run finish; answer the latest finished scheduled run that has rows in the hub."""
    from include.airflow_api import AirflowApi
    from include.calendar_sync.report import rows

    api = AirflowApi(
        airflow_url, settings.airflow_api.username, settings.airflow_api.password.get_secret_value(), timeout_s=30
    )
    started = time.monotonic()
    try:
        while True:
            active = sum(api.list_runs(CALENDAR_SYNC_DAG, state=st, limit=1)[1] for st in ("running", "queued"))
            if not active or time.monotonic() - started > timeout_s:
                break
            if int(time.monotonic() - started) % 15 < 2:
                say(
                    f"calendar: waiting for the scheduled run that started with the stack "
                    f"({time.monotonic() - started:.0f}s)"
                )
            time.sleep(2)
        runs, _ = api.list_runs(CALENDAR_SYNC_DAG, limit=20)
    finally:
        api.close()
    done = sorted(
        (r for r in runs if r["state"] in ("success", "failed") and r.get("run_type") == "scheduled"),
        key=lambda r: str(r.get("start_date") or ""),
    )
    with_rows = [r["dag_run_id"] for r in done if rows(settings.postgres.dsn(), r["dag_run_id"])]
    return with_rows[-1:]  # the latest one


def _runs_since(settings: Settings, airflow_url: str, since: str) -> list[dict[str, Any]]:
    """Calendar runs queued at or after `since` (ISO, UTC), oldest first."""
    from include.airflow_api import AirflowApi

    api = AirflowApi(
        airflow_url, settings.airflow_api.username, settings.airflow_api.password.get_secret_value(), timeout_s=30
    )
    try:
        runs, _ = api.list_runs(CALENDAR_SYNC_DAG, limit=50)
    finally:
        api.close()
    after = datetime.fromisoformat(since)
    found = [r for r in runs if r.get("queued_at") and datetime.fromisoformat(r["queued_at"]) >= after]
    return sorted(found, key=lambda r: str(r["queued_at"]))


def run_calendar_part(
    settings: Settings, urls: dict[str, str], gateway_url: str, airflow_url: str, say: Say, timeout_s: float = 900.0
) -> dict[str, Any] | None:
    """A full sync of the seeded firm through the gateway and the DAG, the per-employee table; then a
    person's edits on both sides and the next run carrying them across. The schedule (every quarter
    hour) may start a run between the edits and the demo's own run: then that run carries them, and
    the demo says so and shows its table; every edit is checked on the other side either way."""
    say("\n== calendar: Advoware <-> Google, advoware_calendar_sync triggered through the gateway")
    try:
        from devstack.calendar_demo import make_changes
        from include.calendar_sync.context import SyncContext
        from include.calendar_sync.report import rows, table
    except ImportError as exc:
        say(f"calendar demo: not available yet ({exc}): skipped")
        return None
    hub = settings.postgres.dsn()
    earlier = _wait_for_scheduled_runs(settings, airflow_url, say, timeout_s)
    for run_id in earlier:  # the schedule may have done the initial sync already (DAGs start unpaused)
        say(f"calendar: the scheduled run {run_id} ran since start-up:")
        say(table(hub, run_id))
    first = _calendar_run(settings, gateway_url, airflow_url, {"full_content": True}, say, timeout_s)
    say(table(hub, first) + ("\n(nothing changed since the scheduled run: no writes)" if earlier else ""))
    say(
        'calendar: SYNC_ANONYMIZE=true: Google holds "Termin" and the times, no title, note, place or matter'
        if settings.sync.anonymize
        else "calendar: SYNC_ANONYMIZE=false: Google holds title, note, place and matter (a deliberate choice)"
    )
    employees = sorted(r["employee"] for r in rows(hub, first) if r["status"] == "success")
    if not employees:
        raise RuntimeError(f"calendar run {first} synced no employee")
    ctx = SyncContext.from_settings(settings)
    try:
        edited_at = datetime.now(UTC).isoformat()
        edits = make_changes(ctx, employees)
        say("calendar: changes made by hand on both sides:\n" + "\n".join(f"   {e.note}" for e in edits))
        second = _calendar_run(settings, gateway_url, airflow_url, {}, say, timeout_s)
        for run in _runs_since(settings, airflow_url, edited_at):
            if run["dag_run_id"] != second:  # e.g. the quarter-hour schedule, between the edits and ours
                say(
                    f"calendar: the {run.get('run_type', '')} run {run['dag_run_id']} started after the edits "
                    f"and carried (some of) them across:"
                )
                say(table(hub, run["dag_run_id"]))
        say(table(hub, second))
        missing = [e.note for e in edits if not e.arrived(ctx)]
    finally:
        ctx.close()
    for e in edits:
        say(f"   {'carried across' if e.note not in missing else 'NOT carried across'}: {e.note}")
    failed = [r["employee"] for r in rows(hub, second) if r["status"] != "success"]
    if failed or missing:
        raise RuntimeError(f"calendar: employees not synced {failed}, edits not carried across {missing}")
    return {"first_run": first, "second_run": second, "employees": employees, "changes": len(edits)}


def fail_stale_runs(airflow_url: str, token: str, before: str, say: Say) -> list[str]:
    """Mark runs queued before `before` (ISO time, UTC) as failed: after a sandbox restart they work on
    state that is gone, and with max_active_runs=1 their retries would hold back every new run."""
    headers = {"Authorization": f"Bearer {token}"}
    stale: list[str] = []
    with httpx.Client(base_url=airflow_url, headers=headers, timeout=30) as http:
        r = http.get("/api/v2/dags/~/dagRuns", params={"state": ["running", "queued"], "limit": 1000})
        r.raise_for_status()
        for run in r.json().get("dag_runs", []):
            stamp = run.get("queued_at") or run.get("start_date")
            if stamp and datetime.fromisoformat(stamp) >= datetime.fromisoformat(before):
                continue
            http.patch(
                f"/api/v2/dags/{run['dag_id']}/dagRuns/{run['dag_run_id']}",
                params={"update_mask": "state"},
                json={"state": "failed"},
            ).raise_for_status()
            stale.append(f"{run['dag_id']}/{run['dag_run_id']}")
    if stale:
        say(f"marked {len(stale)} unfinished runs of the previous demo as failed: {', '.join(stale)}")
    return stale
