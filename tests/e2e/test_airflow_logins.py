"""Real logins: the compose deployment's auth manager (FAB) and init commands, proven outside
containers. An Airflow api-server on a free port with its own metadata database in the local PostgreSQL,
the auth-manager setting of docker-compose.yaml and the init commands of its airflow-init, run as they
are written there; then over the REST API: the operator may trigger, clear and read logs, the viewer only
reads, the gateway's account triggers the two sync DAGs and nothing more. The Airflow part of
`kanzlei-sync check` runs against it too (login refused, missing pools, a paused DAG)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from include.checks.run import run_all
from include.dag_ids import BETEILIGTE_SYNC_DAG, CALENDAR_SYNC_DAG
from include.settings import AirflowApiSettings, Settings
from sandbox.runner import free_port
from tests.conftest import PG_HOST, PG_PORT, PG_USER, pg_dsn

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
USERS = {"anna": ("operator", "anna-Pw-1"), "otto": ("viewer", "otto-Pw-2"), "root": ("admin", "root-Pw-3")}
GATEWAY_USER, GATEWAY_PASSWORD = "kanzlei-gateway", "gw-Secret-77"
OTHER_DAG = "other_dag"


def compose_init_commands() -> list[list[str]]:
    """The airflow-init command of docker-compose.yaml, one argv per `&&` step."""
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    script = compose["services"]["airflow-init"]["command"][-1]
    return [shlex.split(step) for step in script.split("&&")]


def compose_auth_manager() -> str:
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
    return str(compose["x-airflow-env"]["AIRFLOW__CORE__AUTH_MANAGER"])


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("airflow-fab")
    dags = home / "dags"
    dags.mkdir()
    for f in (ROOT / "dags").glob("*.py"):
        (dags / f.name).write_text(f.read_text())
    (dags / "other_dag.py").write_text(
        "from datetime import datetime\nfrom airflow.sdk import dag, task\n\n\n"
        f"@dag(dag_id={OTHER_DAG!r}, schedule=None, start_date=datetime(2025, 1, 1))\n"
        "def other():\n    @task\n    def hello() -> None:\n        pass\n\n    hello()\n\n\nother()\n"
    )
    meta, hub = f"af_fab_{uuid.uuid4().hex[:8]}", f"hub_fab_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{meta}"')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "POSTGRES_", "_AIRFLOW"))}
    env.update(
        {
            "PATH": f"{BIN}:{env.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__AUTH_MANAGER": compose_auth_manager(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{meta}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
            "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
            "AIRFLOW_UI_USERS": ",".join(f"{u}:{role}:{pw}" for u, (role, pw) in USERS.items()),
            "AIRFLOW_API_USERNAME": GATEWAY_USER,
            "AIRFLOW_API_PASSWORD": GATEWAY_PASSWORD,
            "POSTGRES_HOST": PG_HOST,
            "POSTGRES_PORT": str(PG_PORT),
            "POSTGRES_USER": PG_USER,
            "POSTGRES_DB": hub,
            "LOG_LEVEL": "WARNING",
        }
    )
    server = None
    try:
        outputs = []
        for argv in compose_init_commands():  # exactly airflow-init's steps
            if argv[0] == "kanzlei-sync":
                argv = [sys.executable, "-m", "include.cli", *argv[1:]]
            done = subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True, timeout=420)
            assert done.returncode == 0, f"{argv}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
            outputs.append(done.stdout)
        done = subprocess.run(
            ["airflow", "dags", "reserialize"], env=env, cwd=home, capture_output=True, text=True, timeout=300
        )  # the dag-processor's part: the DAGs into the database
        assert done.returncode == 0, done.stderr[-4000:]
        log = open(home / "api-server.log", "w")  # noqa: SIM115 - closed with the server below
        server = subprocess.Popen(
            ["airflow", "api-server", "--port", str(port)],
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (home / "api-server.log").read_text()[-4000:]
            try:
                if httpx.get(f"{url}/api/v2/version", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (home / "api-server.log").read_text()[-4000:]
            time.sleep(1)
        yield {"url": url, "env": env, "home": home, "init_output": outputs}
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{meta}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{hub}" WITH (FORCE)')


def login(url: str, user: str, password: str) -> httpx.Client:
    r = httpx.post(f"{url}/auth/token", json={"username": user, "password": password}, timeout=30)
    assert r.status_code == 201, f"{user}: {r.status_code} {r.text}"
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {r.json()['access_token']}"}, timeout=30)


def trigger(client: httpx.Client, dag_id: str) -> int:
    return client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None}).status_code


def clear(client: httpx.Client, dag_id: str) -> int:
    return client.post(f"/api/v2/dags/{dag_id}/clearTaskInstances", json={"dry_run": True}).status_code


def read_log(client: httpx.Client, dag_id: str) -> int:
    # no task has run (no scheduler here): an allowed reader gets 404, a refused one 403
    return client.get(f"/api/v2/dags/{dag_id}/dagRuns/none/taskInstances/plan_employees/logs/1").status_code


def test_each_role_may_do_what_it_is_for_and_no_more(airflow: dict[str, Any]) -> None:
    url = airflow["url"]
    assert httpx.post(f"{url}/auth/token", json={"username": "anna", "password": "wrong"}).status_code == 401

    operator = login(url, "anna", USERS["anna"][1])
    assert trigger(operator, BETEILIGTE_SYNC_DAG) == 200
    assert clear(operator, BETEILIGTE_SYNC_DAG) == 200
    assert read_log(operator, CALENDAR_SYNC_DAG) == 404
    assert operator.patch("/api/v2/pools/default_pool", json={"slots": 1}).status_code == 403  # not an admin

    viewer = login(url, "otto", USERS["otto"][1])
    assert viewer.get(f"/api/v2/dags/{CALENDAR_SYNC_DAG}").status_code == 200
    assert viewer.get(f"/api/v2/dags/{BETEILIGTE_SYNC_DAG}/dagRuns").status_code == 200
    assert read_log(viewer, CALENDAR_SYNC_DAG) == 404
    assert trigger(viewer, BETEILIGTE_SYNC_DAG) == 403
    assert clear(viewer, BETEILIGTE_SYNC_DAG) == 403

    gateway = login(url, GATEWAY_USER, GATEWAY_PASSWORD)
    assert trigger(gateway, CALENDAR_SYNC_DAG) == 200 and trigger(gateway, BETEILIGTE_SYNC_DAG) == 200
    assert gateway.get(f"/api/v2/dags/{BETEILIGTE_SYNC_DAG}/dagRuns", params={"state": "queued"}).status_code == 200
    assert trigger(gateway, OTHER_DAG) == 403
    assert clear(gateway, BETEILIGTE_SYNC_DAG) == 403
    assert read_log(gateway, CALENDAR_SYNC_DAG) == 403
    assert gateway.get("/api/v2/variables").status_code == 403
    assert gateway.get("/api/v2/connections").status_code == 403
    assert gateway.patch("/api/v2/pools/default_pool", json={"slots": 1}).status_code == 403

    admin = login(url, "root", USERS["root"][1])
    assert admin.get("/api/v2/variables").status_code == 200


def test_the_init_step_is_idempotent_and_keeps_changed_passwords(airflow: dict[str, Any]) -> None:
    init = " ".join(airflow["init_output"])
    assert "pool google_calendar_api: created (4 slots)" in init
    assert "user anna: created (Sync Operator)" in init and f"user {GATEWAY_USER}: created (Sync Gateway)" in init
    again = subprocess.run(
        [sys.executable, "-m", "include.cli", "airflow", "users"],
        env=airflow["env"],
        cwd=airflow["home"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "user anna: exists (left as it is)" in again.stdout
    pools = subprocess.run(
        [sys.executable, "-m", "include.cli", "airflow", "pools"],
        env=airflow["env"],
        cwd=airflow["home"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pools.returncode == 0 and "pool advoware_api: exists with 4 slots (left as it is)" in pools.stdout
    assert f"user {GATEWAY_USER}: role and password as in .env" in again.stdout
    for _, password in USERS.values():
        assert password not in again.stdout + again.stderr
    login(airflow["url"], "anna", USERS["anna"][1]).close()  # still her password


def test_the_airflow_check_against_the_real_api_server(airflow: dict[str, Any]) -> None:
    url = airflow["url"]

    def verdicts(password: str = GATEWAY_PASSWORD) -> list[str]:
        settings = Settings(
            _env_file=None,
            airflow_api=AirflowApiSettings(_env_file=None, url=url, username=GATEWAY_USER, password=password),
        )
        return [f"{v.status} {v.checked}" for v in run_all(settings, only=["airflow"])]

    assert verdicts("wrong") == [f"fail login of {GATEWAY_USER} at {url}: refused (HTTP 401)"]
    before = verdicts()
    assert f"ok DAG {CALENDAR_SYNC_DAG}: present, unpaused" in before
    # airflow-init made the pools (`kanzlei-sync airflow pools`); one deleted is named as missing
    assert "ok pool google_calendar_api: 4 slots" in before and "ok pool advoware_api: 4 slots" in before
    admin = login(url, "root", USERS["root"][1])
    assert admin.delete("/api/v2/pools/advoware_api").status_code == 204
    assert "fail pool advoware_api: missing (tasks in it never start)" in verdicts()
    assert admin.post("/api/v2/pools", json={"name": "advoware_api", "slots": 4}).status_code == 201
    r = admin.patch(f"/api/v2/dags/{CALENDAR_SYNC_DAG}", params={"update_mask": "is_paused"}, json={"is_paused": True})
    assert r.status_code == 200, r.text
    after = verdicts()
    assert f"fail DAG {CALENDAR_SYNC_DAG}: paused" in after
    assert f"ok DAG {BETEILIGTE_SYNC_DAG}: present, unpaused" in after
    admin.patch(f"/api/v2/dags/{CALENDAR_SYNC_DAG}", params={"update_mask": "is_paused"}, json={"is_paused": False})
    healthy = verdicts()
    assert all(v.startswith("ok ") for v in healthy), healthy
    assert "ok pool google_calendar_api: 4 slots" in healthy
