"""`make demo` / `make down` for real: the devstack on other free ports, beside any running demo.

Starts the sandbox, the gateway and Airflow standalone with `python -m devstack up`, checks
what a user checks (Airflow's /api/v2/version, the admin login, /healthz of gateway and sandboxes),
that the demo firm is seeded, that EspoCRM's webhooks point at the gateway with secrets the gateway
accepts (a CRM user's change travels by itself: EspoCRM's sender -> gateway -> beteiligte_sync ->
Advoware), that the API pools exist, then `down`, and verifies that no process of the stack remains
and every port is free again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.runner import ServerThread, free_port
from tests.conftest import pg_dsn

ENV_WEBHOOK_SECRET = "e2e-env-webhook-secret"

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
AIRFLOW_TIMEOUT_S = 60


def devstack(cmd: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", *cmd.split()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def stack_processes(run_dir: Path) -> set[psutil.Process]:
    """The recorded processes and all their descendants, found independently of devstack."""
    procs: set[psutil.Process] = set()
    for pidfile in (run_dir / "pids").glob("*.json"):
        rec = json.loads(pidfile.read_text())
        try:
            leader = psutil.Process(rec["pid"])
            procs.add(leader)
            procs.update(leader.children(recursive=True))
        except psutil.NoSuchProcess:
            continue
    return procs


def recorded_pids(run_dir: Path) -> dict[str, int]:
    return {f.stem: json.loads(f.read_text())["pid"] for f in (run_dir / "pids").glob("*.json")}


def alive(procs: set[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(f"{p.pid} {' '.join(p.cmdline())[:80]}")
        except psutil.NoSuchProcess:
            continue
    return out


def listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stack_env(tmp_path: Path, redis_url: str) -> Iterator[dict[str, str]]:
    ports = {
        name: free_port()
        for name in ("advoware", "google", "espocrm", "gateway", "airflow", "worker_logs", "trigger_logs")
    }
    hub_db = f"hub_e2e_{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DEVSTACK_RUN_DIR": str(tmp_path / "run"),
        "DEVSTACK_AIRFLOW_HOME": str(tmp_path / "airflow"),
        "SANDBOX_MODE": "true",
        "ADVOWARE_BASE_URL": f"http://127.0.0.1:{ports['advoware']}",
        "ESPOCRM_BASE_URL": f"http://127.0.0.1:{ports['espocrm']}",
        "GOOGLE_API_ENDPOINT": f"http://127.0.0.1:{ports['google']}/calendar/v3/",
        "GOOGLE_BATCH_URI": f"http://127.0.0.1:{ports['google']}/batch/calendar/v3",
        "GOOGLE_TOKEN_URI": f"http://127.0.0.1:{ports['google']}/token",
        "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH": str(tmp_path / "run" / "sa.json"),
        "GATEWAY_PORT": str(ports["gateway"]),
        "AIRFLOW_API_URL": f"http://127.0.0.1:{ports['airflow']}",
        "AIRFLOW_API_USERNAME": "admin",
        "AIRFLOW_API_PASSWORD": f"e2e-{uuid.uuid4().hex[:12]}",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": hub_db,
        "REDIS_URL": redis_url,
        # Airflow's log servers must not collide with a running demo's 8793/8794 either.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["worker_logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["trigger_logs"]),
        "E2E_PORTS": json.dumps(ports),
        "ESPOCRM_WEBHOOK_SECRET": ENV_WEBHOOK_SECRET,
    }
    env.pop("AIRFLOW_HOME", None)
    try:
        yield env
    finally:
        devstack("down", env, timeout=120)  # idempotent; cleans up after a failed assertion too
        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{hub_db}" WITH (FORCE)')


def test_demo_stack_up_healthy_then_down_leaves_nothing(stack_env: dict[str, str]) -> None:
    env = stack_env
    ports = json.loads(env["E2E_PORTS"])
    run_dir = Path(env["DEVSTACK_RUN_DIR"])

    started = time.monotonic()
    up = devstack("up --timeout 240", env, timeout=300)
    assert up.returncode == 0, f"up failed:\n{up.stdout}\n{up.stderr}"
    assert time.monotonic() - started < 240
    af = f"http://127.0.0.1:{ports['airflow']}"
    assert af in up.stdout and env["AIRFLOW_API_PASSWORD"] in up.stdout  # the summary tells the login
    # which database it empties, said before it does so
    said = up.stdout.index(f"hub database: {env['POSTGRES_DB']} on ")
    assert (
        said
        < up.stdout.index(f"clearing the hub tables of database {env['POSTGRES_DB']}")
        < up.stdout.index(f"hub tables of {env['POSTGRES_DB']} and")
    )

    # Airflow's single API worker also serves the tasks of the first runs: patience on a loaded machine
    version = httpx.get(f"{af}/api/v2/version", timeout=AIRFLOW_TIMEOUT_S)
    assert version.status_code == 200 and version.json()["version"].startswith("3.")
    token = httpx.post(
        f"{af}/auth/token",
        timeout=AIRFLOW_TIMEOUT_S,
        json={"username": "admin", "password": env["AIRFLOW_API_PASSWORD"]},
    )
    assert token.status_code == 201 and token.json()["access_token"]
    dags = httpx.get(
        f"{af}/api/v2/dags",
        timeout=AIRFLOW_TIMEOUT_S,
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert dags.status_code == 200
    assert httpx.get(f"http://127.0.0.1:{ports['gateway']}/healthz", timeout=5).status_code == 200
    for name in ("advoware", "google", "espocrm"):
        assert httpx.get(f"http://127.0.0.1:{ports[name]}/healthz", timeout=5).status_code == 200, name
    assert Path(env["GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH"]).exists()
    with psycopg.connect(pg_dsn(env["POSTGRES_DB"])) as conn:  # the hub was migrated
        assert conn.execute("SELECT to_regclass('calendar_links')").fetchone()[0] == "calendar_links"

    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    check_demo_prepared(env, ports, af, headers)

    # A second `up` finds everything running, starts nothing new and keeps the webhooks.
    webhooks_file = run_dir / "espocrm-webhooks.json"
    registered = webhooks_file.read_text()
    before = recorded_pids(run_dir)
    again = devstack("up --timeout 60", env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert webhooks_file.read_text() == registered
    # the same recorded services (task processes come and go, so only the leaders are compared)
    assert recorded_pids(run_dir) == before and len(before) == 3
    procs = stack_processes(run_dir)

    assert len(alive(procs)) >= 5  # sandbox, gateway, standalone and its components
    down = devstack("down", env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert alive(procs) == []
    busy = [name for name, port in ports.items() if listening(port)]
    assert busy == []
    assert not list((run_dir / "pids").glob("*.json"))


def check_demo_prepared(env: dict[str, str], ports: dict[str, int], af: str, headers: dict[str, str]) -> None:
    adv = f"http://127.0.0.1:{ports['advoware']}"
    espo = f"http://127.0.0.1:{ports['espocrm']}"
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    # the demo firm: 4 employees in Advoware, 10 parties in EspoCRM
    state = httpx.get(f"{adv}/_sandbox/state", timeout=10).json()
    assert len(state["mitarbeiter"]) == 4
    api = httpx.Client(base_url=f"{espo}/api/v1", headers={"X-Api-Key": "sandbox-espocrm-key"}, timeout=10)
    assert api.get("/CBeteiligte", params={"maxSize": 1}).json()["total"] == 10

    # three webhooks, skipOwn, at the gateway; the gateway holds their secrets (not the .env one)
    hooks = [h for h in api.get("/Webhook").json()["list"] if h["url"].startswith(gateway + "/")]
    assert sorted(h["event"] for h in hooks) == ["CBeteiligte.create", "CBeteiligte.delete", "CBeteiligte.update"]
    assert all(h["skipOwn"] for h in hooks)
    secret = json.loads((Path(env["DEVSTACK_RUN_DIR"]) / "espocrm-webhooks.json").read_text())["secret"]
    assert {pair.split("=", 1)[0] for pair in secret.split(",")} == {h["id"] for h in hooks}
    assert secret not in Path(ROOT / ".env.example").read_text()
    # a delivery signed with the .env secret (a developer's curl, docs/interfaces.md) is accepted as well
    body = b'[{"id": "envSignedParty1"}]'
    mac = hmac.new(ENV_WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    signed = httpx.post(
        f"{gateway}/webhooks/vmh/beteiligte/delete",
        content=body,
        timeout=10,
        headers={"Signature": base64.b64encode(f"curl:{mac}".encode()).decode()},
    )
    assert signed.status_code == 200, signed.text

    # a CRM user's new party travels by itself: EspoCRM's sender (auto flush) -> gateway -> DAG -> Advoware
    created = httpx.post(
        f"{espo}/_sandbox/user/CBeteiligte",
        timeout=10,
        json={"name": "E2E Partei", "vorname": "Test", "emailAddress": "e2e@mail.example"},
    ).json()
    deadline = time.monotonic() + 180
    delivered = linked = False
    while time.monotonic() < deadline and not linked:
        log = httpx.get(f"{espo}/_sandbox/webhooks/log", timeout=10).json()["deliveries"]
        delivered = delivered or any(created["id"] in d["ids"] and d["result"] == "delivered" for d in log)
        assert not [d for d in log if d["result"] != "delivered"], log  # a wrong secret would show as 401
        record = api.get(f"/CBeteiligte/{created['id']}").json()
        linked = bool(record.get("advowareBetNr"))
        time.sleep(1)
    assert delivered, "EspoCRM's sender did not deliver the webhook to the gateway"
    assert linked, "the party did not reach Advoware (no betNr written back) within 180 s"
    beteiligte = httpx.get(f"{adv}/_sandbox/state", timeout=10).json()["beteiligte"]
    assert [b for b in beteiligte if b["betNr"] == record["advowareBetNr"]]
    api.close()

    pools = httpx.get(f"{af}/api/v2/pools", headers=headers, timeout=AIRFLOW_TIMEOUT_S).json()["pools"]
    assert {p["name"]: p["slots"] for p in pools if p["name"] != "default_pool"} == {
        "google_calendar_api": 4,
        "advoware_api": 4,
    }


def test_preparing_airflow_outlasts_a_locked_sqlite(tmp_path: Path) -> None:
    """`airflow standalone` keeps its metadata in SQLite: while the scheduler writes, the REST API
    answers 500 "Database error" (seen in CI on POST /api/v2/pools). The stack must still get its pools
    (a task in a missing pool never runs), so the idempotent preparation is repeated."""
    from devstack.demo import POOLS, airflow_retrying, ensure_pools

    app, pools, answers = FastAPI(), {}, []

    @app.post("/api/v2/pools")
    async def create(request: Request) -> JSONResponse:
        body = await request.json()
        if not answers:  # the first write meets the scheduler's lock
            answers.append(500)
            return JSONResponse({"detail": {"reason": "Database error"}}, status_code=500)
        if body["name"] in pools:
            answers.append(409)
            return JSONResponse({"detail": "exists"}, status_code=409)
        pools[body["name"]] = body["slots"]
        answers.append(201)
        return JSONResponse(body, status_code=201)

    @app.patch("/api/v2/pools/{name}")
    async def resize(name: str, request: Request) -> JSONResponse:
        pools[name] = (await request.json())["slots"]
        answers.append(200)
        return JSONResponse({"name": name, "slots": pools[name]})

    server = ServerThread(app).start()
    try:
        said: list[str] = []
        sizes = airflow_retrying(lambda: ensure_pools(server.url, "token", said.append))
    finally:
        server.stop()
    assert pools == sizes == POOLS
    assert answers[0] == 500 and said == ["Airflow pools: " + ", ".join(f"{n}={s}" for n, s in POOLS.items())]
