"""The demo's scenario on a real stack (the devstack on free ports): what it tells a person is true,
and nothing it runs leaks a secret or a client's data into a log file or an HTTP answer.

1. The quarter-hour case: another calendar run (as the schedule would start one) carries the demo's
   edits before the demo's own run; the demo names that run, shows its table, and checks every edit
   on the other side ("carried across"), instead of an all-zero table.
2. Known secrets (tokens, passwords, keys, webhook secrets) and the firm's client data (appointment
   texts and places, party names and e-mail addresses, the demo's own edits) appear in no log file of
   the platform (gateway, Airflow and every task log) and in none of the gateway's answers; the ids of
   the touched appointments do appear in the task logs; no log carries a deprecation warning or
   FastAPI's duplicate-operation-id warning.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from devstack import demo as devstack_demo
from include.airflow_api import AirflowApi
from include.dag_ids import CALENDAR_SYNC_DAG
from sandbox import advoware as adv_sbx
from tests.conftest import pg_dsn
from tests.e2e.test_demo_stack import devstack
from tests.stack_helpers import stack_env

# what a deprecation warning says: DeprecationWarning, DeprecatedImportWarning, "... is deprecated"
DEPRECATION = re.compile(r"deprecat\w*warning|\bdeprecated\b", re.IGNORECASE)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def _env(tmp_path: Path, hub_db: str, redis_url: str) -> dict[str, str]:
    return stack_env(
        tmp_path,
        hub_db,
        redis_url,
        AIRFLOW_API_PASSWORD=f"pw-{uuid.uuid4().hex}",
        GATEWAY_API_TOKEN=f"tok-{uuid.uuid4().hex}",
        GATEWAY_READ_TOKEN=f"rtok-{uuid.uuid4().hex}",
        CALENDAR_SYNC_SCHEDULE="0 0 1 1 *",
        LOG_LEVEL="INFO",
    )


def _platform_logs(tmp_path: Path) -> dict[str, str]:
    """Every log file of the platform: gateway, Airflow's components and every task log (not the
    sandboxes': they stand in for Advoware, Google and EspoCRM)."""
    out = {}
    for folder in (tmp_path / "run" / "logs", tmp_path / "af" / "logs"):
        for path in folder.rglob("*"):
            if path.is_file() and path.name != "sandbox.log":
                out[str(path.relative_to(tmp_path))] = path.read_text(errors="replace")
    return out


def _client_data(env: dict[str, str]) -> set[str]:
    """Texts of the firm that are client data: appointment texts and places, party names and e-mails."""
    adv = httpx.get(f"{env['ADVOWARE_BASE_URL']}/_sandbox/state", timeout=30).json()
    espo = httpx.get(f"{env['ESPOCRM_BASE_URL']}/_sandbox/state", timeout=30).json()
    values = {str(t.get(k)) for t in adv["termine"] for k in ("text", "notiz", "ort") if t.get(k)}
    values |= {str(p.get(k)) for p in adv.get("beteiligte", []) for k in ("name", "vorname") if p.get(k)}
    for party in espo["records"].get("CBeteiligte", []):
        values |= {str(party.get(k)) for k in ("name", "vorname", "emailAddress", "phoneNumber") if party.get(k)}
    # generic words would match anything: keep what identifies a client or an appointment
    return {v for v in values if len(v) >= 8}


def test_the_demo_reports_edits_carried_by_another_run_and_leaks_nothing(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_db = f"hub_scenario_{uuid.uuid4().hex[:10]}"
    env = _env(tmp_path, hub_db, redis_url)
    try:
        up = devstack("up --timeout 240", env, timeout=300)
        assert up.returncode == 0, f"{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        for name in (
            "ADVOWARE_BASE_URL",
            "ESPOCRM_BASE_URL",
            "GOOGLE_API_ENDPOINT",
            "GOOGLE_BATCH_URI",
            "GOOGLE_TOKEN_URI",
            "GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH",
            "GATEWAY_PORT",
            "AIRFLOW_API_URL",
            "AIRFLOW_API_PASSWORD",
            "GATEWAY_API_TOKEN",
            "GATEWAY_READ_TOKEN",
            "POSTGRES_DB",
            "REDIS_URL",
            "SANDBOX_MODE",
        ):
            monkeypatch.setenv(name, env[name])
        from include.settings import Settings

        settings = Settings(_env_file=None)
        api = AirflowApi(env["AIRFLOW_API_URL"], "admin", env["AIRFLOW_API_PASSWORD"], timeout_s=30)
        extra: list[str] = []

        import devstack.calendar_demo as demo

        real_make_changes = demo.make_changes

        def edits_then_a_scheduled_run(ctx: Any, codes: list[str]) -> Any:
            edits = real_make_changes(ctx, codes)
            run_id = f"quarter_hour__{uuid.uuid4().hex[:8]}"  # what the schedule would start now
            api.trigger(CALENDAR_SYNC_DAG, {}, dag_run_id=run_id)
            deadline = time.monotonic() + 300
            while api.get_run(CALENDAR_SYNC_DAG, run_id)["state"] not in ("success", "failed"):
                assert time.monotonic() < deadline
                time.sleep(1)
            extra.append(run_id)
            return edits

        monkeypatch.setattr(demo, "make_changes", edits_then_a_scheduled_run)
        said: list[str] = []
        urls = {
            "advoware": env["ADVOWARE_BASE_URL"],
            "espocrm": env["ESPOCRM_BASE_URL"],
            "google": env["GOOGLE_TOKEN_URI"].rsplit("/token", 1)[0],
        }
        gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        devstack_demo.run_party_part(settings, urls, gateway, said.append)
        result = devstack_demo.run_calendar_part(settings, urls, gateway, env["AIRFLOW_API_URL"], said.append)
        text = "\n".join(said)

        # 1. the demo tells what happened to its edits, whichever run carried them
        assert result is not None and extra
        assert f"run {extra[0]} started after the edits and carried" in text
        assert text.count("   carried across: ") == 5 and "NOT carried across" not in text

        # 2. nothing leaks: HTTP answers of the gateway (dead letters, metrics, a webhook, a trigger) ...
        write = {"Authorization": f"Bearer {env['GATEWAY_API_TOKEN']}"}
        secret = json.loads((tmp_path / "run" / "espocrm-webhooks.json").read_text())["secret"]
        hook_id, hook_secret = secret.split(",")[0].split("=", 1)
        body = json.dumps([{"id": "6650leak00000001", "name": "Gräfin Geheimnis"}]).encode()
        mac = hmac.new(hook_secret.encode(), body, hashlib.sha256).hexdigest()
        answers = [
            httpx.get(f"{gateway}/webhooks/dead-letters", headers=write, timeout=10).text,
            httpx.get(f"{gateway}/metrics", timeout=10).text,
            httpx.post(
                f"{gateway}/webhooks/vmh/beteiligte/update",
                content=body,
                timeout=10,
                headers={
                    "Content-Type": "application/json",
                    "Signature": base64.b64encode(f"{hook_id}:{mac}".encode()).decode(),
                },
            ).text,
            httpx.post(f"{gateway}/advoware/calendar/sync", json={}, headers=write, timeout=30).text,
        ]
        # ... and every log file, read after everything ran
        logs = _platform_logs(tmp_path)
        assert any("task_id=employee_sync.phase_" in name for name in logs), "task logs were read"
        secrets = {
            env["AIRFLOW_API_PASSWORD"],
            env["GATEWAY_API_TOKEN"],
            env["GATEWAY_READ_TOKEN"],
            hook_secret,
            adv_sbx.PASSWORD,
            adv_sbx.API_KEY,
            "sandbox-espocrm-key",
        }
        secrets |= {pair.split("=", 1)[1] for pair in secret.split(",")}
        client_data = _client_data(env) | {
            "Gräfin Geheimnis",
            "Im Kalender umbenannt",
            "Neuer Termin aus Google",
            "Neuer Termin aus Advoware",
            "Besprechungsraum 3",
        }
        assert len(client_data) > 20  # the firm's data was found, so the check below can fail
        leaks = sorted(
            {
                (what, where)
                for where, content in [*logs.items(), *(("answer", a) for a in answers)]
                for what in secrets | client_data
                if what in content
            }
        )
        assert leaks == []
        # no warning a person reads as trouble: deprecations, FastAPI's duplicate operation ids (a
        # traceback through sqlalchemy/util/deprecations.py is not one: Airflow's SQLite may be locked)
        noise = sorted(
            {
                name
                for name, content in logs.items()
                if DEPRECATION.search(content) or "Duplicate Operation ID" in content
            }
        )
        assert noise == []
        # the touched appointments are named by id in the task logs
        task_logs = "\n".join(v for k, v in logs.items() if "task_id=employee_sync" in k)
        frnrs = [
            line.split("frNr ")[1].split(" ")[0] for line in text.splitlines() if line.startswith("   Advoware: frNr ")
        ]
        assert frnrs and all(f"frNr={n}" in task_logs for n in frnrs)
        api.close()
    finally:
        devstack("down", env, timeout=180)
        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{hub_db}" WITH (FORCE)')
