"""The compose check's scenario, played from outside against the running containers (devstack/compose_check.py).

Everything goes through the published ports as a firm's users and monitoring would: the gateway, the
Airflow API server, the sandbox's services; the hub and the queue are read through the ports the
check's override publishes on 127.0.0.1. Output names ids and counts, never party or appointment content.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import psycopg

from devstack.compose_env import (
    API_TOKEN,
    GATEWAY_IN_NETWORK,
    GATEWAY_PASSWORD,
    GATEWAY_USER,
    HOST_VIEW,
    PORTS,
    STAGE,
    USERS,
    WEBHOOK_SECRET,
    WORK,
    CheckFailed,
    ComposeCheck,
    poll,
    set_env_value,
    sign,
)
from include.dag_ids import BETEILIGTE_SYNC_DAG, CALENDAR_SYNC_DAG

if TYPE_CHECKING:
    from include.settings import Settings

GATEWAY = f"http://127.0.0.1:{PORTS['gateway']}"
AIRFLOW = f"http://127.0.0.1:{PORTS['airflow']}"
URLS = {
    "advoware": f"http://127.0.0.1:{PORTS['advoware']}",
    "google": f"http://127.0.0.1:{PORTS['google']}",
    "espocrm": f"http://127.0.0.1:{PORTS['espocrm']}",
}
STATE: dict[str, Any] = {}


def host_settings() -> Settings:
    """The project's settings as seen from the host: the check's .env with the published addresses.
    Read in WORK (no .env there), from the environment of this process only."""
    from include.settings import Settings

    values = {}
    for line in (STAGE / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    values.update(
        {
            "ADVOWARE_BASE_URL": URLS["advoware"],
            "ESPOCRM_BASE_URL": URLS["espocrm"],
            "GOOGLE_API_ENDPOINT": f"{URLS['google']}/calendar/v3/",
            "GOOGLE_BATCH_URI": f"{URLS['google']}/batch/calendar/v3",
            "GOOGLE_TOKEN_URI": f"{URLS['google']}/token",
            "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH": str(STAGE / ".run" / "sandbox-service-account.json"),
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_PORT": str(PORTS["postgres"]),
            "REDIS_URL": f"redis://127.0.0.1:{PORTS['redis']}/0",
            "AIRFLOW_API_URL": AIRFLOW,
        }
    )
    HOST_VIEW.clear()
    HOST_VIEW.update(values)
    os.environ.update(values)
    os.chdir(WORK)
    return Settings()


def token(user: str, password: str) -> str:
    r = httpx.post(f"{AIRFLOW}/auth/token", json={"username": user, "password": password}, timeout=30)
    if r.status_code != 201:
        raise CheckFailed(f"login of {user} refused: {r.status_code}")
    return str(r.json()["access_token"])


def client(user: str) -> httpx.Client:
    pw = GATEWAY_PASSWORD if user == GATEWAY_USER else USERS[user][1]
    return httpx.Client(base_url=AIRFLOW, headers={"Authorization": f"Bearer {token(user, pw)}"}, timeout=30)


def _count(conn: psycopg.Connection[Any], sql: str) -> int:
    row = conn.execute(sql).fetchone()
    assert row is not None  # count(*) always answers one row
    return int(row[0])


def hub_counts(settings: Settings) -> dict[str, int]:
    with psycopg.connect(settings.postgres.dsn()) as conn:
        return {
            "calendar links": _count(conn, "SELECT count(*) FROM calendar_links WHERE status = 'linked'"),
            "party links": _count(conn, "SELECT count(*) FROM party_links"),
            "dead letters": _count(conn, "SELECT count(*) FROM dead_letters"),
        }


def metric(name: str) -> float:
    text = httpx.get(f"{GATEWAY}/metrics", timeout=15).text
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M))


def google_duplicates() -> list[str]:
    """Events of one Advoware appointment standing twice in one calendar (not cancelled)."""
    state = httpx.get(f"{URLS['google']}/_sandbox/state", timeout=60).json()
    seen: Counter[tuple[str, str]] = Counter()
    for cal in state["calendars"]:
        for ev in cal["events"]:
            private = (ev.get("extendedProperties") or {}).get("private") or {}
            frnr = next((v for k, v in private.items() if "frnr" in k.lower()), None)
            if frnr and ev.get("status") != "cancelled" and not ev.get("recurringEventId"):
                seen[(cal["id"], frnr)] += 1
    return [f"{cal} frnr {frnr} x{n}" for (cal, frnr), n in seen.items() if n > 1]


def wait_run(check: ComposeCheck, run_id: str, timeout_s: float = 900) -> str:
    from include.airflow_api import AirflowApi

    api = AirflowApi(AIRFLOW, GATEWAY_USER, GATEWAY_PASSWORD, timeout_s=30)
    try:
        state = poll(
            lambda: s if (s := api.get_run(CALENDAR_SYNC_DAG, run_id)["state"]) in ("success", "failed") else None,
            timeout_s,
            f"calendar run {run_id}",
            every_s=3,
        )
    finally:
        api.close()
    if state != "success":
        raise CheckFailed(f"calendar run {run_id} ended {state}")
    return str(state)


def trigger_calendar(body: dict[str, Any] | None = None) -> str:
    r = httpx.post(
        f"{GATEWAY}/advoware/calendar/sync",
        json=body or {},
        timeout=30,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    if r.status_code not in (200, 202):
        raise CheckFailed(f"POST /advoware/calendar/sync answered {r.status_code}: {r.text[:300]}")
    return str(r.json()["dag_run_id"])


def party_webhook(items: list[dict[str, Any]]) -> httpx.Response:
    """EspoCRM's update webhook of these items, signed with the .env secret as EspoCRM would."""
    body = json.dumps(items).encode()
    return httpx.post(
        f"{GATEWAY}/webhooks/vmh/beteiligte/update",
        content=body,
        timeout=30,
        headers={"Signature": sign(body, WEBHOOK_SECRET), "Content-Type": "application/json"},
    )


# -- the demo scenario -------------------------------------------------------------------------------------
def scenario(check: ComposeCheck) -> None:
    from devstack.demo import ensure_webhooks, run_calendar_part, run_party_part, seed_sandboxes

    say = check.say
    settings = host_settings()
    STATE["settings"] = settings
    version = httpx.get(f"{AIRFLOW}/api/v2/version", timeout=15).json()
    ui = httpx.get(f"{AIRFLOW}/", timeout=15)
    say(f"Airflow {version.get('version')}: API answers, UI {ui.status_code} ({len(ui.text)} bytes of HTML)")
    if ui.status_code != 200:
        raise CheckFailed(f"Airflow UI answered {ui.status_code}")
    seed_sandboxes(URLS, say)

    # EspoCRM's webhooks point at the gateway inside the network; the printed secrets go into .env and
    # the gateway is started anew with them, as the README tells a firm to do.
    secret, _ = ensure_webhooks(settings, WORK, GATEWAY_IN_NETWORK, say)
    set_env_value(STAGE, "ESPOCRM_WEBHOOK_SECRET", f"{WEBHOOK_SECRET},{secret}")
    check.compose("up", "-d", "--no-deps", "--force-recreate", "gateway")
    check.wait_healthy(["gateway"], 180)
    say("gateway restarted with the webhook secrets in .env")

    before = metric("vmh_webhook_accepted_total")
    run_party_part(settings, URLS, GATEWAY_IN_NETWORK, say)
    after = metric("vmh_webhook_accepted_total")
    say(f"/metrics: vmh_webhook_accepted_total {before:.0f} -> {after:.0f}")
    if after <= before:
        raise CheckFailed("/metrics did not count the webhooks")

    summary = run_calendar_part(settings, URLS, GATEWAY, AIRFLOW, say, timeout_s=900)
    STATE["calendar"] = summary
    with client("root") as admin:
        r = admin.get("/sync-status/")
        say(f"status view {AIRFLOW}/sync-status/: {r.status_code} ({len(r.text)} bytes)")
        if r.status_code != 200:
            raise CheckFailed(f"status view answered {r.status_code}")
    say(f"hub: {hub_counts(settings)}")
    check.findings.append(
        "demo scenario in containers: parties through signed webhooks into Advoware, two "
        "calendar runs through the gateway, UI, status view and /metrics answer"
    )


def roles(check: ComposeCheck) -> None:
    """What docs/betrieb.md promises of the FAB roles, on the running containers."""
    say = check.say
    r = httpx.post(f"{AIRFLOW}/auth/token", json={"username": "anna", "password": "wrong"}, timeout=30)
    expect(r.status_code == 401, f"a wrong password: {r.status_code}")
    say("wrong password: 401")
    run_id = STATE["calendar"]["second_run"]
    log_path = f"/api/v2/dags/{CALENDAR_SYNC_DAG}/dagRuns/{run_id}/taskInstances/plan_employees/logs/1"
    trigger = f"/api/v2/dags/{BETEILIGTE_SYNC_DAG}/dagRuns"
    with client("anna") as op:
        r = op.post(trigger, json={"logical_date": None})
        expect(r.status_code == 200, f"operator trigger: {r.status_code}")
        log = op.get(log_path, headers={"Accept": "application/json"})
        expect(log.status_code == 200 and len(log.text) > 100, f"operator log: {log.status_code}")
        expect(op.patch("/api/v2/pools/default_pool", json={"slots": 1}).status_code == 403, "operator pool edit")
    say(
        f"operator anna: triggers {BETEILIGTE_SYNC_DAG} (200), reads the log of plan_employees "
        f"({len(log.text)} bytes), may not edit pools (403)"
    )
    with client("otto") as viewer:
        expect(viewer.get(f"/api/v2/dags/{CALENDAR_SYNC_DAG}/dagRuns").status_code == 200, "viewer reads runs")
        expect(viewer.get(log_path).status_code == 200, "viewer reads the log")
        r = viewer.post(trigger, json={"logical_date": None})
        expect(r.status_code == 403, f"viewer trigger: {r.status_code}")
    say("viewer otto: reads runs and the log (200), trigger refused (403)")
    with client(GATEWAY_USER) as gw:
        for dag in (CALENDAR_SYNC_DAG, BETEILIGTE_SYNC_DAG):
            expect(gw.get(f"/api/v2/dags/{dag}/dagRuns", params={"limit": 1}).status_code == 200, f"gateway {dag}")
        codes = {
            "log": gw.get(log_path).status_code,
            "variables": gw.get("/api/v2/variables").status_code,
            "connections": gw.get("/api/v2/connections").status_code,
            "pools": gw.patch("/api/v2/pools/default_pool", json={"slots": 1}).status_code,
            "clear": gw.post(
                f"/api/v2/dags/{BETEILIGTE_SYNC_DAG}/clearTaskInstances", json={"dry_run": True}
            ).status_code,
        }
        expect(all(c == 403 for c in codes.values()), f"gateway account beyond triggering: {codes}")
    say(
        f"gateway account {GATEWAY_USER}: triggered both DAGs through the gateway above; refused "
        + ", ".join(f"{k} {v}" for k, v in codes.items())
    )
    check.findings.append(
        "FAB roles on the running api-server: operator triggers and reads logs, viewer reads "
        "and gets 403 on trigger, the gateway's account only triggers/reads its two DAGs, "
        "a wrong password gets 401"
    )


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise CheckFailed(f"unexpected: {what}")


# -- Celery ----------------------------------------------------------------------------------------------
def new_appointments(check: ComposeCheck, day_offset: int) -> int:
    """One new Advoware appointment per synced employee, so the next run has work in every unit (a quiet
    run is plan_employees alone, one task instance on one worker)."""
    from datetime import date

    from include.calendar_sync.context import SyncContext

    day = (date.today() + timedelta(days=day_offset)).isoformat()
    employees = STATE["calendar"]["employees"]
    ctx = SyncContext.from_settings(STATE["settings"])
    try:
        for kuerzel in employees:
            ctx.advoware.create_termin(
                {
                    "kuerzel": kuerzel,
                    "anwalt": kuerzel,
                    "text": "Termin (compose check)",
                    "datum": f"{day}T10:00:00",
                    "datumBis": f"{day}T11:00:00",
                    "uhrzeitVon": "10:00:00",
                    "uhrzeitBis": "11:00:00",
                }
            )
    finally:
        ctx.close()
    check.say(f"one new Advoware appointment on {day} for each of {len(employees)} employees")
    return len(employees)


def worker_hosts(check: ComposeCheck) -> dict[str, str]:
    """Celery worker containers by the host name Airflow records with each task instance."""
    out = {}
    for c in check.containers():
        if check.service_of(c) == "airflow-worker":
            inspect = json.loads(check.podman("inspect", c["Names"][0], quiet=True).stdout)[0]
            out[inspect["Config"]["Hostname"]] = c["Names"][0]
            out[inspect["Id"][:12]] = c["Names"][0]
    return out


def celery_run(check: ComposeCheck) -> None:
    from include.airflow_api import AirflowApi

    say = check.say
    hosts = worker_hosts(check)
    by_name: dict[str, set[str]] = {}
    for host, name in hosts.items():
        by_name.setdefault(name, set()).add(host)
    listed = ", ".join(f"{n} (host {' / '.join(sorted(h))})" for n, h in sorted(by_name.items()))
    say(f"Celery workers: {listed}")
    expect(len(set(hosts.values())) >= 2, f"two worker containers, found {hosts}")
    new_appointments(check, 4)
    run_id = trigger_calendar({"full_content": True})
    say(f"calendar run {run_id} triggered through the gateway")
    wait_run(check, run_id)
    api = AirflowApi(AIRFLOW, GATEWAY_USER, GATEWAY_PASSWORD, timeout_s=30)
    try:
        r = api.request(
            "GET", f"/api/v2/dags/{CALENDAR_SYNC_DAG}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
        )
        tis = [t for t in r.json()["task_instances"] if t.get("hostname")]
    finally:
        api.close()
    by_container: dict[str, list[str]] = {}
    for ti in tis:
        name = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
        host = str(ti["hostname"]).split(".")[0]
        by_container.setdefault(hosts.get(host, f"? {ti['hostname']}"), []).append(name)
    for container, names in sorted(by_container.items()):
        say(f"  {container}: {len(names)} task instances: {', '.join(sorted(names))}")
    used = [c for c in by_container if c in hosts.values()]
    expect(len(used) >= 2, f"task instances on two worker containers, got {sorted(by_container)}")
    check.findings.append(
        f"CeleryExecutor layered over the stack: run {run_id}'s {len(tis)} task instances ran "
        f"on {len(used)} worker containers"
    )


def restart_during_run(check: ComposeCheck) -> None:
    """The scheduler and one worker restarted while a full calendar run is going: it finishes, nothing twice."""
    from include.airflow_api import AirflowApi

    say = check.say
    settings = STATE["settings"]
    new_appointments(check, 5)
    since = datetime.now(UTC) - timedelta(seconds=5)
    run_id = trigger_calendar({"full_content": True})
    api = AirflowApi(AIRFLOW, GATEWAY_USER, GATEWAY_PASSWORD, timeout_s=30)

    def running() -> list[str]:
        r = api.request(
            "GET", f"/api/v2/dags/{CALENDAR_SYNC_DAG}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
        )
        return [t["task_id"] for t in r.json()["task_instances"] if t["state"] == "running"]

    try:
        tasks = poll(running, 300, f"a running task of run {run_id}", every_s=1)
        names = {check.service_of(c): c["Names"][0] for c in check.containers()}
        worker = sorted(c["Names"][0] for c in check.containers() if check.service_of(c) == "airflow-worker")[0]
        say(f"run {run_id} is running ({', '.join(tasks)}): podman restart {names['airflow-scheduler']} {worker}")
        check.podman("restart", "-t", "30", names["airflow-scheduler"], worker, quiet=True)
        wait_run(check, run_id)
        runs, _ = api.list_runs(CALENDAR_SYNC_DAG, limit=50)
    finally:
        api.close()
    manual = [
        r["dag_run_id"]
        for r in runs
        if r.get("run_type") == "manual" and r.get("queued_at") and datetime.fromisoformat(r["queued_at"]) >= since
    ]
    dupes = google_duplicates()
    from include.calendar_sync.report import table

    say(table(settings.postgres.dsn(), run_id))
    say(
        f"run {run_id}: success after the restarts; manual runs since the trigger: {manual}; "
        f"appointments twice in Google: {dupes or 'none'}"
    )
    expect(manual == [run_id], f"one run, got {manual}")
    expect(not dupes, f"duplicates in Google: {dupes[:5]}")
    check.findings.append(
        "scheduler and one Celery worker restarted during a calendar run: the run finished, "
        "one run, no appointment twice in Google"
    )


# -- stop and start with the volumes --------------------------------------------------------------------------
def stop_and_start(check: ComposeCheck) -> None:
    say = check.say
    settings = STATE["settings"]
    from include.queue.party_queue import PartyQueue

    # a dead letter: a webhook item without a valid id (signed with the .env secret, as EspoCRM would)
    r = party_webhook([{"name": "no id"}])
    expect(r.status_code in (200, 202), f"webhook with a rejected item: {r.status_code} {r.text[:200]}")
    dl = httpx.get(f"{GATEWAY}/webhooks/dead-letters", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30)
    expect(dl.status_code == 200, f"dead letters: {dl.status_code}")
    # queued parties: the party DAG paused (an operator's pause), two ids delivered
    with client("root") as admin:  # what an operator does to hold the party sync: pause, stop the running run
        admin.patch(
            f"/api/v2/dags/{BETEILIGTE_SYNC_DAG}", params={"update_mask": "is_paused"}, json={"is_paused": True}
        ).raise_for_status()
        runs = admin.get(
            f"/api/v2/dags/{BETEILIGTE_SYNC_DAG}/dagRuns", params={"state": ["running", "queued"], "limit": 100}
        ).json()["dag_runs"]
        for run in runs:
            admin.patch(
                f"/api/v2/dags/{BETEILIGTE_SYNC_DAG}/dagRuns/{run['dag_run_id']}",
                params={"update_mask": "state"},
                json={"state": "failed"},
            ).raise_for_status()
    ids = ["check0000000000001", "check0000000000002"]
    r = party_webhook([{"id": i} for i in ids])
    expect(r.status_code in (200, 202), f"webhook: {r.status_code}")
    queue = PartyQueue.from_settings(settings)
    try:
        before = {**hub_counts(settings), "queued parties": queue.stats().pending}
    finally:
        queue.r.close()
    expect(
        before["dead letters"] >= 1 and before["queued parties"] >= 2 and before["calendar links"] > 0,
        f"something to keep: {before}",
    )
    say(f"before: {before}")
    check.compose("down", "-t", "30", timeout=600)
    left = check.containers()
    expect(not left, f"containers after down: {[c['Names'][0] for c in left]}")
    say("stack stopped and removed (volumes kept); starting it again")
    check.up(timeout_s=600)
    queue = PartyQueue.from_settings(settings)
    try:
        after = {**hub_counts(settings), "queued parties": queue.stats().pending}
    finally:
        queue.r.close()
    say(f"after:  {after}")
    expect(after == before, f"data lost: before {before}, after {after}")
    check.findings.append(f"stop and start with the volumes: {after} all kept (PostgreSQL volume, Redis AOF)")
