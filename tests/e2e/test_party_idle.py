"""While no webhook arrives, `beteiligte_sync` starts no task process beyond each sweep's first look
(the demo stack, on free ports).

The sweep is made to run every minute. Per idle sweep, Airflow's metadata shows exactly one task
instance that ran in a task process: `work_queued` (pid set, one try), which deferred to the
triggerer and was ended there (skipped, its log never shows a resumption on a worker); `drain_queue`
is skipped without a process (no pid). Then one signed webhook arrives through the gateway, and the
run it triggers drains it in a task process (pid set): the count can see one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from include.airflow_api import AirflowApi
from tests.conftest import pg_dsn
from tests.e2e.test_demo_stack import devstack
from tests.stack_helpers import stack_env

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
DAG = "beteiligte_sync"
SWEEPS = 3


def _env(tmp_path: Path, hub_db: str, redis_url: str) -> dict[str, str]:
    return stack_env(
        tmp_path, hub_db, redis_url, BETEILIGTE_SYNC_SCHEDULE="* * * * *", CALENDAR_SYNC_SCHEDULE="0 0 1 1 *"
    )


def _runs(api: AirflowApi) -> list[dict[str, Any]]:
    return api.list_runs(DAG, limit=100)[0]


def _tis(api: AirflowApi, run_id: str) -> list[dict[str, Any]]:
    r = api.request("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances")
    r.raise_for_status()
    return r.json()["task_instances"]


def _log(api: AirflowApi, run_id: str, task_id: str) -> str:
    r = api.request("GET", f"/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/{task_id}/logs/1")
    r.raise_for_status()
    return json.dumps(r.json())


def test_idle_sweeps_start_one_short_task_process_and_a_webhook_starts_the_drain(
    tmp_path: Path, redis_url: str
) -> None:
    hub_db = f"hub_idle_{uuid.uuid4().hex[:10]}"
    env = _env(tmp_path, hub_db, redis_url)
    try:
        up = devstack("up --timeout 240", env, timeout=300)
        assert up.returncode == 0, f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        api = AirflowApi(env["AIRFLOW_API_URL"], "admin", env["AIRFLOW_API_PASSWORD"], timeout_s=30)
        deadline = time.monotonic() + 420
        while True:  # a few idle minutes: until SWEEPS scheduled sweeps have finished
            done = [r for r in _runs(api) if r["run_type"] == "scheduled" and r["state"] == "success"]
            if len(done) >= SWEEPS:
                break
            assert time.monotonic() < deadline, f"only {len(done)} sweeps finished"
            time.sleep(5)
        for run in done:
            tis = {t["task_id"]: t for t in _tis(api, run["dag_run_id"])}
            assert tis["work_queued"]["state"] == "skipped" and tis["drain_queue"]["state"] == "skipped", run
            assert [t["task_id"] for t in tis.values() if t["pid"]] == ["work_queued"], run  # the first look
            assert tis["work_queued"]["try_number"] == 1
            log = _log(api, run["dag_run_id"], "work_queued")
            assert "waiting in the triggerer" in log and "resumed on a worker" not in log, run

        # one webhook: the gateway triggers a run, whose drain runs in a task process
        hooks = json.loads((tmp_path / "run" / "espocrm-webhooks.json").read_text())["secret"]
        hook_id, secret = hooks.split(",")[0].split("=", 1)
        body = json.dumps([{"id": "6650idle00000001"}]).encode()
        mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        kind = next(
            h["event"].split(".")[-1]
            for h in httpx.get(
                f"{env['ESPOCRM_BASE_URL']}/api/v1/Webhook", headers={"X-Api-Key": "sandbox-espocrm-key"}, timeout=10
            ).json()["list"]
            if h["id"] == hook_id
        )
        r = httpx.post(
            f"http://127.0.0.1:{env['GATEWAY_PORT']}/webhooks/vmh/beteiligte/{kind}",
            content=body,
            headers={
                "Content-Type": "application/json",
                "Signature": base64.b64encode(f"{hook_id}:{mac}".encode()).decode(),
            },
            timeout=10,
        )
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 300
        drained: list[dict[str, Any]] = []
        while not drained:
            assert time.monotonic() < deadline, "the webhook's run did not drain the queue"
            drained = [
                t
                for run in _runs(api)
                if run["state"] == "success"
                for t in _tis(api, run["dag_run_id"])
                if t["task_id"] == "drain_queue" and t["state"] == "success"
            ]
            time.sleep(2)
        assert drained[0]["pid"]  # this one ran in a task process
        api.close()
    finally:
        devstack("down", env, timeout=180)
        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{hub_db}" WITH (FORCE)')
