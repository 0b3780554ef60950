"""`POST /advoware/calendar/sync`: against a small fake of Airflow's two endpoints (token, dagRuns;
the fake of tests/integration/test_airflow_api.py), and end to end against a real Airflow standalone (e2e)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from devstack.demo import POOLS, airflow_retrying
from include.settings import AirflowApiSettings, GatewaySettings, Settings
from sandbox.runner import ServerThread, free_port
from tests.advoware_helpers import sandbox_settings as advoware_sandbox
from tests.conftest import pg_dsn
from tests.e2e.test_demo_stack import devstack
from tests.integration.test_airflow_api import PASSWORD, USER, make_fake_airflow
from tests.stack_helpers import stack_env
from webhook_gateway.calendar import MAX_TRIGGER_BODY, TRIGGER_DEADLINE_S

DAG = "advoware_calendar_sync"
WRITE, READ = "calendar-write-token", "calendar-read-token"


def gateway(airflow_url: str) -> TestClient:
    from webhook_gateway.app import create_app

    settings = Settings(
        _env_file=None,
        airflow_api=AirflowApiSettings(_env_file=None, url=airflow_url, username=USER, password=PASSWORD, timeout_s=5),
        gateway=GatewaySettings(
            _env_file=None, api_token=WRITE, read_token=READ, airflow_ui_url="http://airflow.example"
        ),
    )
    return TestClient(create_app(settings))


@pytest.fixture
def airflow() -> Iterator[tuple[FastAPI, str]]:
    app = make_fake_airflow(dags=(DAG,))
    with ServerThread(app) as server:
        yield app, server.url


def auth(token: str = WRITE, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def test_needs_the_read_write_token(airflow: tuple[FastAPI, str]) -> None:
    app, url = airflow
    with gateway(url) as client:
        assert client.post("/advoware/calendar/sync", json={}).status_code == 401
        assert client.post("/advoware/calendar/sync", json={}, headers=auth("wrong")).status_code == 403
        assert client.post("/advoware/calendar/sync", json={}, headers=auth(READ)).status_code == 403
    assert app.state.runs == {}


def test_triggers_a_run_with_the_body_as_conf_and_answers_its_link(airflow: tuple[FastAPI, str]) -> None:
    app, url = airflow
    with gateway(url) as client:
        r = client.post(
            "/advoware/calendar/sync", json={"full_content": True, "employees": ["AB", "CD"]}, headers=auth()
        )
    assert r.status_code == 202
    body = r.json()
    run = app.state.runs[(DAG, body["dag_run_id"])]
    assert run["conf"] == {"full_content": True, "employees": ["AB", "CD"]} and run["logical_date"] is None
    assert body["created"] is True and body["state"] == "queued"
    assert body["url"] == f"http://airflow.example/dags/{DAG}/runs/{body['dag_run_id']}"


def test_a_retried_call_does_not_start_a_second_run(airflow: tuple[FastAPI, str]) -> None:
    app, url = airflow
    with gateway(url) as client:
        first = client.post("/advoware/calendar/sync", json={}, headers=auth(**{"Idempotency-Key": "k-1"}))
        again = client.post("/advoware/calendar/sync", json={}, headers=auth(**{"Idempotency-Key": "k-1"}))
        by_request_id = [
            client.post("/advoware/calendar/sync", json={}, headers=auth(**{"X-Request-ID": "req-7"})) for _ in range(2)
        ]
        unkeyed = [client.post("/advoware/calendar/sync", json={}, headers=auth()) for _ in range(2)]
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["dag_run_id"] == again.json()["dag_run_id"] and again.json()["created"] is False
    assert [r.status_code for r in by_request_id] == [202, 200]
    assert by_request_id[0].json()["dag_run_id"] == by_request_id[1].json()["dag_run_id"]
    assert [r.status_code for r in unkeyed] == [202, 202]  # no key: each call is its own request
    assert len(app.state.runs) == 4


def test_rejects_a_bad_body_and_reports_airflow_down(airflow: tuple[FastAPI, str]) -> None:
    app, url = airflow
    with gateway(url) as client:
        assert client.post("/advoware/calendar/sync", json={"employees": "AB"}, headers=auth()).status_code == 422
        assert client.post("/advoware/calendar/sync", json={"employees": ["A B;"]}, headers=auth()).status_code == 422
        assert client.post("/advoware/calendar/sync", json={"dry": 1}, headers=auth()).status_code == 422
    assert app.state.runs == {}
    with gateway(f"http://127.0.0.1:{free_port()}") as client:
        down = client.post("/advoware/calendar/sync", json={}, headers=auth())
    assert down.status_code == 503 and "request_id" in down.json()


# -- end to end: gateway → real Airflow standalone (the demo stack on free ports) ----------------------
@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_the_gateway_starts_a_real_run_in_the_demo_stack(tmp_path: Path, redis_url: str) -> None:
    hub_db = f"hub_e2e_{uuid.uuid4().hex[:10]}"
    env = stack_env(tmp_path, hub_db, redis_url, GATEWAY_API_TOKEN=WRITE)
    try:
        up = devstack("up --timeout 240", env, timeout=300)
        assert up.returncode == 0, f"{up.stdout}\n{up.stderr}"
        gw = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        # a client does what the 503 says ("try again"): just after start-up, standalone's SQLite may keep
        # the API busy past the gateway's 15 s trigger deadline on a loaded machine; the key makes it one run
        deadline = time.monotonic() + 120
        while True:
            r = httpx.post(
                f"{gw}/advoware/calendar/sync",
                json={"employees": []},
                timeout=30,
                headers=auth(**{"Idempotency-Key": "e2e-calendar"}),
            )
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert r.status_code in (200, 202), r.text  # 200: an earlier try created it after all
        run_id = r.json()["dag_run_id"]
        again = httpx.post(
            f"{gw}/advoware/calendar/sync", json={}, timeout=30, headers=auth(**{"Idempotency-Key": "e2e-calendar"})
        )
        assert again.status_code == 200 and again.json()["dag_run_id"] == run_id
        af = env["AIRFLOW_API_URL"]
        token = httpx.post(
            f"{af}/auth/token", json={"username": "admin", "password": env["AIRFLOW_API_PASSWORD"]}, timeout=10
        ).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}

        def pools() -> dict[str, int]:  # Airflow on SQLite may answer 500 while its scheduler writes
            r = httpx.get(f"{af}/api/v2/pools", headers=bearer, timeout=10)
            r.raise_for_status()
            return {p["name"]: p["slots"] for p in r.json()["pools"]}

        made = airflow_retrying(pools)  # the stack provides them: a task in a missing pool never runs
        assert {name: made.get(name) for name in POOLS} == POOLS
        deadline, state = time.monotonic() + 300, None
        while time.monotonic() < deadline:  # the scheduler picks the run up and works it through
            run = httpx.get(f"{af}/api/v2/dags/{DAG}/dagRuns/{run_id}", timeout=10, headers=bearer)
            state = run.json().get("state") if run.status_code == 200 else None
            if state in ("success", "failed"):
                break
            time.sleep(2)
        assert state in ("success", "failed"), state
        tis = httpx.get(f"{af}/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances", timeout=10, headers=bearer).json()
        listed = [ti for ti in tis["task_instances"] if ti["task_id"] == "plan_employees"]
        assert listed and listed[0]["state"] == "success"  # the run really executed in Airflow
        runs = httpx.get(f"{af}/api/v2/dags/{DAG}/dagRuns", timeout=10, headers=bearer).json()
        assert [x["dag_run_id"] for x in runs["dag_runs"]].count(run_id) == 1
        assert json.loads(json.dumps(run.json()["conf"])) == {"full_content": False, "employees": []}
    finally:
        devstack("down", env, timeout=120)
        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{hub_db}" WITH (FORCE)')


def test_a_large_body_is_413_before_parsing_and_a_422_echoes_nothing(airflow: tuple[FastAPI, str]) -> None:
    app, url = airflow
    big = json.dumps({"employees": ["AB"] * 800_000}).encode()  # about 5 MiB
    invalid = json.dumps({"employees": "x" * 10_000}).encode()
    with gateway(url) as client:
        r = client.post("/advoware/calendar/sync", content=big, headers=auth(**{"Content-Type": "application/json"}))
        assert r.status_code == 413 and r.json()["limit"] == MAX_TRIGGER_BODY
        bad = client.post(
            "/advoware/calendar/sync", content=invalid, headers=auth(**{"Content-Type": "application/json"})
        )
        assert bad.status_code == 422 and len(bad.content) < 2000
        nested = client.post(
            "/advoware/calendar/sync", content=b"[" * 10_000, headers=auth(**{"Content-Type": "application/json"})
        )
        assert nested.status_code == 400
    assert app.state.runs == {}


def test_triggers_waiting_on_a_down_airflow_do_not_hold_up_a_proxy_write(
    airflow: tuple[FastAPI, str], advoware_url: str, redis_url: str, hub: str
) -> None:
    from tests.integration.test_gateway_proxy import TERMIN, audit_rows, hub_settings
    from webhook_gateway.app import create_app

    app, url = airflow
    app.state.fail_next = 10**6  # every trigger answers 500, as a standalone Airflow on a locked SQLite does
    settings = Settings(
        _env_file=None,
        redis_url=redis_url,
        postgres=hub_settings(hub),
        advoware=advoware_sandbox(advoware_url),
        airflow_api=AirflowApiSettings(_env_file=None, url=url, username=USER, password=PASSWORD, timeout_s=5),
        gateway=GatewaySettings(_env_file=None, api_token=WRITE, read_token=READ),
    )

    async def scenario(base: str) -> tuple[httpx.Response, int, list[httpx.Response], float]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            triggers = [
                asyncio.create_task(http.post("/advoware/calendar/sync", json={}, headers=auth())) for _ in range(12)
            ]
            while app.state.trigger_calls < 12:  # every trigger reached Airflow and now waits to retry
                assert not any(t.done() for t in triggers), [t.result().status_code for t in triggers if t.done()]
                await asyncio.sleep(0.02)
            write = await http.post("/api/advoware/Termine", json=TERMIN, headers=auth())
            pending = sum(not t.done() for t in triggers)
            started = time.monotonic()
            answers = await asyncio.gather(*triggers)
            return write, pending, answers, time.monotonic() - started

    with ServerThread(create_app(settings)) as gw:
        write, pending, answers, waited = asyncio.run(scenario(gw.url))
    assert write.status_code == 200
    assert pending == 12  # the write finished while all twelve triggers still waited on Airflow
    assert [a.status_code for a in answers] == [503] * 12
    assert all(a.json()["message"] == "Airflow is not reachable; try again" for a in answers)
    assert waited < TRIGGER_DEADLINE_S + 30  # bounded: the deadline, with room for a loaded machine
    assert [(r["method"], r["status"]) for r in audit_rows(hub)] == [("POST", 200)]
