"""The same DAGs on CeleryExecutor workers (`make scale-demo`'s stack, on free ports): two workers
share the task instances, and a worker killed mid-run loses nothing.

`devstack up --executor celery` starts api-server, scheduler, dag-processor, triggerer and two
Celery workers (worker-1, worker-2) on this machine's PostgreSQL (metadata) and Redis (broker on its
own database). The scale scenario runs a calendar run and the party webhooks and names the worker of
every task instance. Then every employee gets new appointments, and while worker-1 runs one of the
phases it is killed with SIGKILL (its whole process group: Celery, its pool, the task processes).
Airflow notices the missing heartbeats, retries the task, worker-2 runs the retry, and the calendars
and the hub hold every appointment exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from include.advoware.client import AdvowareClient
from include.airflow_api import AirflowApi
from include.calendar_engine.marker import marker_of
from include.dag_ids import CALENDAR_SYNC_DAG
from tests.advoware_helpers import sandbox_settings
from tests.conftest import pg_dsn
from tests.e2e.test_demo_stack import devstack
from tests.stack_helpers import stack_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]
NEW_PER_EMPLOYEE = 4


def _env(tmp_path: Path, hub_db: str, redis_db: int) -> dict[str, str]:
    # only the test starts calendar runs; a task of a dead worker is noticed within 30 s
    return stack_env(
        tmp_path,
        hub_db,
        f"redis://127.0.0.1:6379/{redis_db}",
        CALENDAR_SYNC_SCHEDULE="0 0 1 1 *",
        CALENDAR_SYNC_RETRY_DELAY_S="2",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="30",
        AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT="90",
        DEVSTACK_SCALE_EMPLOYEES="6",
    )


@pytest.fixture
def redis_pair() -> Iterator[int]:
    """Two neighbouring Redis databases claimed like conftest's redis_db: the stack's work queue
    (n) and its Celery broker (n + 1)."""
    control = redis.Redis(host="127.0.0.1", port=6379, db=0)
    token = uuid.uuid4().hex
    for n in range(1, 15):
        if control.set(f"test:claim:db:{n}", token, nx=True, ex=3600):
            if control.set(f"test:claim:db:{n + 1}", token, nx=True, ex=3600):
                break
            control.delete(f"test:claim:db:{n}")
    else:
        pytest.skip("no two neighbouring Redis databases free")
    for db in (n, n + 1):
        redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
    yield n
    for db in (n, n + 1):
        redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()
        if control.get(f"test:claim:db:{db}") == token.encode():
            control.delete(f"test:claim:db:{db}")


def _tis(api: AirflowApi, run_id: str) -> list[dict[str, Any]]:
    r = api.request("GET", f"/api/v2/dags/{CALENDAR_SYNC_DAG}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
    r.raise_for_status()
    return r.json()["task_instances"]


def _new_appointments(env: dict[str, str]) -> int:
    """A person adds appointments in Advoware for every employee: phase 1 has work for each."""
    advoware = AdvowareClient(sandbox_settings(env["ADVOWARE_BASE_URL"]))
    made = 0
    try:
        for m in advoware.list_mitarbeiter():
            for i in range(NEW_PER_EMPLOYEE):
                day = (date.today() + timedelta(days=10 + i)).isoformat()
                advoware.create_termin(
                    {
                        "kuerzel": m["kuerzel"],
                        "anwalt": m["kuerzel"],
                        "text": f"Neu {i}",
                        "datum": f"{day}T10:00:00",
                        "datumBis": f"{day}T11:00:00",
                        "uhrzeitVon": "10:00:00",
                        "uhrzeitBis": "11:00:00",
                    }
                )
                made += 1
    finally:
        advoware.close()
    return made


def _assert_once_everywhere(env: dict[str, str], hub_db: str) -> None:
    """Every Advoware appointment of an employee once in their calendar, every link once in the hub."""
    with psycopg.connect(pg_dsn(hub_db)) as conn:
        calendars = dict(conn.execute("SELECT employee, calendar_id FROM employee_calendars").fetchall())
        doubled = conn.execute(
            "SELECT count(*) FROM (SELECT employee, frnr FROM calendar_links WHERE status = 'linked' "
            "GROUP BY employee, frnr HAVING count(*) > 1) d"
        ).fetchone()
        linked = dict(
            conn.execute(
                "SELECT employee, count(*) FROM calendar_links WHERE status = 'linked' GROUP BY employee"
            ).fetchall()
        )
    assert doubled == (0,)
    google = httpx.get(env["GOOGLE_TOKEN_URI"].rsplit("/token", 1)[0] + "/_sandbox/state", timeout=60).json()
    by_id = {c["id"]: c for c in google["calendars"]}
    for employee, calendar_id in calendars.items():
        marks = [
            marker_of(e)[1] for e in by_id[calendar_id]["events"] if e.get("status") != "cancelled" and marker_of(e)[1]
        ]
        assert len(marks) == len(set(marks)) == linked.get(employee, 0), employee


def test_two_workers_share_the_runs_and_a_killed_worker_loses_nothing(tmp_path: Path, redis_pair: int) -> None:
    hub_db = f"hub_celery_{uuid.uuid4().hex[:10]}"
    env = _env(tmp_path, hub_db, redis_pair)
    try:
        up = devstack("up --executor celery --timeout 420", env, timeout=480)
        assert up.returncode == 0, f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        assert "worker-1@" in up.stdout and "worker-2@" in up.stdout  # both answered a ping on the broker

        scenario = devstack("scale-scenario", env, timeout=900)
        assert scenario.returncode == 0, f"{scenario.stdout[-4000:]}\n{scenario.stderr[-3000:]}"
        # the firm is seeded once (by up); every calendar run on it is reported with outcome and counts
        assert up.stdout.count("sandbox firm: 6 employees") == 1 and "sandbox firm:" not in scenario.stdout
        report = scenario.stdout[scenario.stdout.index("== the calendar runs on this firm") :]
        assert "scale__calendar__" in report and "): success" in report and "\ntotal " in report
        assert "  worker-1: " in scenario.stdout and "  worker-2: " in scenario.stdout
        assert "on 2 workers: worker-1, worker-2" in scenario.stdout

        made = _new_appointments(env)
        google = env["GOOGLE_TOKEN_URI"].rsplit("/token", 1)[0]
        # slow Google down so phase 1 is still running on a worker when it dies
        httpx.post(f"{google}/_sandbox/faults", json={"latency_ms": 1500}, timeout=10).raise_for_status()
        api = AirflowApi(env["AIRFLOW_API_URL"], "admin", env["AIRFLOW_API_PASSWORD"], timeout_s=30)
        run_id = f"e2e__kill__{uuid.uuid4().hex[:8]}"
        api.trigger(CALENDAR_SYNC_DAG, {}, dag_run_id=run_id)
        victim: dict[str, Any] | None = None
        deadline = time.monotonic() + 300
        while victim is None and time.monotonic() < deadline:
            running = [
                t
                for t in _tis(api, run_id)
                if t["state"] == "running"
                and t.get("hostname") == "worker-1"
                and t["task_id"].startswith("employee_sync.")
            ]
            victim = running[0] if running else None
            time.sleep(0.3)
        assert victim is not None, "no phase task ran on worker-1"
        leader = json.loads((tmp_path / "run" / "pids" / "airflow-worker-1.json").read_text())["pid"]
        os.killpg(leader, signal.SIGKILL)  # Celery, its pool and the running task, all at once

        deadline = time.monotonic() + 600
        while (state := api.get_run(CALENDAR_SYNC_DAG, run_id)["state"]) not in ("success", "failed"):
            assert time.monotonic() < deadline, f"run {run_id} still {state}"
            time.sleep(2)
        assert state == "success"
        tis = {(t["task_id"], t["map_index"]): t for t in _tis(api, run_id)}
        retried = tis[(victim["task_id"], victim["map_index"])]
        assert retried["try_number"] >= 2 and retried["hostname"] == "worker-2"  # the other worker took over
        tries = api.request(
            "GET",
            f"/api/v2/dags/{CALENDAR_SYNC_DAG}/dagRuns/{run_id}/taskInstances/"
            f"{victim['task_id']}/{victim['map_index']}/tries",
        ).json()["task_instances"]
        hosts = {t["try_number"]: t["hostname"] for t in tries}
        assert hosts[victim["try_number"]] == "worker-1" and hosts[retried["try_number"]] == "worker-2", hosts
        api.close()
        _assert_once_everywhere(env, hub_db)
        with psycopg.connect(pg_dsn(hub_db)) as conn:
            new_linked = conn.execute("SELECT count(*) FROM calendar_links WHERE status = 'linked'").fetchone()
        assert new_linked is not None and new_linked[0] >= made
    finally:
        devstack("down", env, timeout=240)
        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            for db in (hub_db, f"{hub_db}_airflow"):
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
