"""`make demo` / `make down` for real: the devstack on other free ports, beside any running demo.

Starts the sandbox, the gateway and Airflow standalone with `python -m include.devstack up`, checks
what a user checks (Airflow's /api/v2/version, the admin login, /healthz of gateway and sandboxes),
then `down`, and verifies that no process of the stack remains and every port is free again.
"""

from __future__ import annotations

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

from sandbox.runner import free_port
from tests.conftest import pg_dsn

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def devstack(cmd: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "include.devstack", *cmd.split()], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


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
    ports = {name: free_port() for name in ("advoware", "google", "espocrm", "gateway", "airflow",
                                           "worker_logs", "trigger_logs")}
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

    version = httpx.get(f"{af}/api/v2/version", timeout=10)
    assert version.status_code == 200 and version.json()["version"].startswith("3.")
    token = httpx.post(f"{af}/auth/token", timeout=10,
                       json={"username": "admin", "password": env["AIRFLOW_API_PASSWORD"]})
    assert token.status_code == 201 and token.json()["access_token"]
    dags = httpx.get(f"{af}/api/v2/dags", timeout=10,
                     headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert dags.status_code == 200
    assert httpx.get(f"http://127.0.0.1:{ports['gateway']}/healthz", timeout=5).status_code == 200
    for name in ("advoware", "google", "espocrm"):
        assert httpx.get(f"http://127.0.0.1:{ports[name]}/healthz", timeout=5).status_code == 200, name
    assert Path(env["GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH"]).exists()
    with psycopg.connect(pg_dsn(env["POSTGRES_DB"])) as conn:  # the hub was migrated
        assert conn.execute("SELECT to_regclass('calendar_links')").fetchone()[0] == "calendar_links"

    # A second `up` finds everything running and starts nothing new.
    before = {p.pid for p in stack_processes(run_dir)}
    again = devstack("up --timeout 60", env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    procs = stack_processes(run_dir)
    assert {p.pid for p in procs} >= before

    assert len(alive(procs)) >= 5  # sandbox, gateway, standalone and its components
    down = devstack("down", env, timeout=120)
    assert down.returncode == 0, down.stderr
    assert alive(procs) == []
    busy = [name for name, port in ports.items() if listening(port)]
    assert busy == []
    assert not list((run_dir / "pids").glob("*.json"))
