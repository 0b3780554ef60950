"""`kanzlei-sync check` against the sandboxes, healthy and with each failure injected the way the real
service shows it: a wrong Advoware key, Google delegation refused for one employee, an EspoCRM key
without rights or webhooks pointing elsewhere, SMTP down, a stale hub, Redis unreachable. (The Airflow
checks run against a real api-server in tests/e2e/test_airflow_logins.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from include.checks.run import passed, run_all
from include.checks.verdict import Verdict, render
from include.espocrm.client import EspoCrmClient
from include.hub.db import heads, migrate
from include.settings import (
    AirflowApiSettings,
    EspoCrmSettings,
    GatewaySettings,
    PostgresSettings,
    Settings,
    SmtpSettings,
)
from sandbox.runner import free_port
from tests.calendar_helpers import faults, google_settings, seed_firm
from tests.conftest import PG_HOST, PG_PORT, PG_USER, pg_dsn
from tests.party_helpers import ENTITY, ESPO_KEY, advoware_settings
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.timeout(120)
PUBLIC = "https://gateway.kanzlei.example"
CHECKED = ["advoware", "google", "espocrm", "hub", "redis", "smtp"]  # Airflow: tests/e2e/test_airflow_logins.py


def _postgres(dsn: str) -> PostgresSettings:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return PostgresSettings(
        _env_file=None,
        host=info.get("host", PG_HOST),
        port=int(info.get("port", PG_PORT)),
        db=info["dbname"],
        user=info.get("user", PG_USER),
    )


def _register_webhooks(espocrm_url: str, gateway: str) -> str:
    """What `kanzlei-sync register-webhooks` does; returns the ESPOCRM_WEBHOOK_SECRET value."""
    with EspoCrmClient(espocrm_url, ESPO_KEY, 5.0) as client:
        hooks = [
            client.register_webhook(f"{ENTITY}.{e}", f"{gateway}/webhooks/vmh/beteiligte/{e}")
            for e in ("create", "update", "delete")
        ]
    return ",".join(f"{h['id']}={h['secretKey']}" for h in hooks)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    sink.stopped = False  # type: ignore[attr-defined]
    yield sink
    if not sink.stopped:  # type: ignore[attr-defined]  # test_smtp_down stops it itself
        sink.stop()


@pytest.fixture
def healthy(
    advoware_url: str, google_url: str, espocrm_url: str, redis_url: str, hub: str, tmp_path: Path, smtp: SmtpSink
) -> Settings:
    seed_firm(advoware_url, employees=3, per_employee=1)
    secrets = _register_webhooks(espocrm_url, PUBLIC)
    return Settings(
        _env_file=None,
        sandbox_mode=True,
        redis_url=redis_url,
        postgres=_postgres(hub),
        advoware=advoware_settings(advoware_url),
        google=google_settings(google_url, tmp_path, delegation=True),
        espocrm=EspoCrmSettings(
            _env_file=None, base_url=espocrm_url, api_key=ESPO_KEY, entity=ENTITY, webhook_secret=secrets
        ),
        gateway=GatewaySettings(_env_file=None, public_url=PUBLIC),
        smtp=SmtpSettings(_env_file=None, host="127.0.0.1", port=smtp.port, starttls=False),
        airflow_api=AirflowApiSettings(_env_file=None, url=f"http://127.0.0.1:{free_port()}"),
    )


def by_service(verdicts: list[Verdict], service: str) -> list[Verdict]:
    return [v for v in verdicts if v.service == service]


def failed(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if v.status == "fail"]


def test_a_healthy_sandbox_passes_every_check(healthy: Settings, smtp: SmtpSink) -> None:
    verdicts = run_all(healthy, only=CHECKED)
    assert failed(verdicts) == [], render(verdicts)
    assert passed(verdicts)
    text = render(verdicts)
    assert "delegation (https://www.googleapis.com/auth/calendar) for 3 employees" in text
    assert "webhooks registered for https://gateway.kanzlei.example: create=" in text
    assert f"revision {heads()[0]} (head)" in text and "write protection off" in text
    assert smtp.messages == []  # connected, nothing sent


def test_a_wrong_advoware_key_is_named_with_its_fix(healthy: Settings) -> None:
    settings = healthy.model_copy(
        update={"advoware": healthy.advoware.model_copy(update={"api_key": SecretStr("d3Jvbmcta2V5LTEyMzQ1Njc4OTA=")})}
    )
    (verdict,) = failed(run_all(settings, only=["advoware"]))
    assert verdict.checked.endswith("refused (AdvowareAuthError 401)")
    assert "ADVOWARE_API_KEY" in verdict.fix


def test_delegation_refused_for_one_employee(healthy: Settings, advoware_url: str, google_url: str) -> None:
    people = sorted(
        (m["kuerzel"], m["email"])
        for m in httpx.get(f"{advoware_url}/_sandbox/state").json()["mitarbeiter"]
        if m.get("email")
    )
    refused_kuerzel, refused_email = people[1]
    faults(google_url, {"match": "token", "status": 401, "reason": "unauthorized_client", "principal": refused_email})
    verdicts = run_all(healthy, only=["google"])
    (verdict,) = failed(verdicts)
    assert f"refused for {refused_kuerzel} (unauthorized_client)" in verdict.checked
    assert not any(k in verdict.checked for k, _ in people if k != refused_kuerzel)
    assert "Domain-wide delegation" in verdict.fix and "client id" in verdict.fix
    assert any(v.checked == f"calendar access (calendarList.list) for {len(people) - 1} employees" for v in verdicts)


def test_an_espocrm_key_without_rights_and_webhooks_pointing_elsewhere(healthy: Settings, espocrm_url: str) -> None:
    # EspoCRM answers 403 (empty body) when the API user's role may not read the entity
    faults(espocrm_url, {"match": f"{ENTITY}.list", "status": 403, "reason": "Forbidden"})
    (verdict,) = failed(run_all(healthy, only=["espocrm"]))
    assert verdict.checked == f"read {ENTITY}: forbidden (403)" and "Roles" in verdict.fix
    faults(espocrm_url)  # cleared

    espo = healthy.espocrm
    wrong_key = healthy.model_copy(update={"espocrm": espo.model_copy(update={"api_key": SecretStr("nope")})})
    (verdict,) = failed(run_all(wrong_key, only=["espocrm"]))
    assert "not accepted (401)" in verdict.checked

    elsewhere = healthy.model_copy(
        update={"gateway": GatewaySettings(_env_file=None, public_url="https://new-gateway.example")}
    )
    (verdict,) = failed(run_all(elsewhere, only=["espocrm"]))
    assert f"{ENTITY}.create points elsewhere ({PUBLIC}/webhooks/vmh/beteiligte/create)" in verdict.checked
    assert "register-webhooks" in verdict.fix

    unknown = healthy.model_copy(update={"espocrm": espo.model_copy(update={"webhook_secret": SecretStr("x=y")})})
    (verdict,) = failed(run_all(unknown, only=["espocrm"]))
    assert "has no secret in ESPOCRM_WEBHOOK_SECRET" in verdict.checked


def test_smtp_down(healthy: Settings, smtp: SmtpSink) -> None:
    smtp.stop()
    smtp.stopped = True  # type: ignore[attr-defined]
    (verdict,) = failed(run_all(healthy, only=["smtp"]))
    assert verdict.checked == f"127.0.0.1:{smtp.port}: cannot connect (ConnectionRefusedError)"
    assert "SMTP_PORT" in verdict.fix


def test_smtp_without_starttls_when_it_is_required(healthy: Settings) -> None:
    settings = healthy.model_copy(update={"smtp": healthy.smtp.model_copy(update={"starttls": True})})
    (verdict,) = failed(run_all(settings, only=["smtp"]))
    assert "offers no STARTTLS" in verdict.checked


@pytest.fixture
def stale_hub() -> Iterator[str]:
    name = f"hub_test_stale_{uuid.uuid4().hex[:8]}"
    migrate(pg_dsn(name), "0001")
    yield name
    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_stale_hub_revision(healthy: Settings, stale_hub: str) -> None:
    settings = healthy.model_copy(update={"postgres": _postgres(pg_dsn(stale_hub))})
    (verdict,) = failed(run_all(settings, only=["hub"]))
    where = f"database {stale_hub} on {PG_HOST}:{PG_PORT}"
    assert verdict.checked == f"{where}: at revision 0001, the code expects {heads()[0]}"
    assert "kanzlei-sync migrate" in verdict.fix


def test_redis_unreachable(healthy: Settings) -> None:
    port = free_port()
    settings = healthy.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/3"})
    (verdict,) = failed(run_all(settings, only=["redis"]))
    assert verdict.checked == f"127.0.0.1:{port} db 3: not reachable (ConnectionError)"


def test_the_command_exits_1_on_a_failure_and_never_prints_a_secret(healthy: Settings, tmp_path: Path) -> None:
    """As an administrator runs it, from .env values in the environment; one check fails (Airflow down)."""
    secrets = {
        "ADVOWARE_PASSWORD": healthy.advoware.password.get_secret_value(),
        "ADVOWARE_API_KEY": healthy.advoware.api_key.get_secret_value(),
        "ESPOCRM_API_KEY": ESPO_KEY,
        "ESPOCRM_WEBHOOK_SECRET": healthy.espocrm.webhook_secret.get_secret_value(),
        "AIRFLOW_API_PASSWORD": "af-Secret-7",
        "SMTP_PASSWORD": "smtp-Secret-1",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADVOWARE_", "ESPOCRM_", "GOOGLE_", "SMTP_"))}
    a, g = healthy.advoware, healthy.google
    env.update(
        secrets,
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
        SANDBOX_MODE="true",
        ADVOWARE_BASE_URL=a.base_url,
        ADVOWARE_USERNAME=a.username,
        ADVOWARE_APP_ID=a.app_id,
        ADVOWARE_KANZLEI=a.kanzlei,
        ADVOWARE_DATABASE=a.database,
        GOOGLE_CALENDAR_SERVICE_ACCOUNT_PATH=g.calendar_service_account_path,
        GOOGLE_DELEGATION="true",
        GOOGLE_API_ENDPOINT=g.api_endpoint,
        GOOGLE_BATCH_URI=g.batch_uri,
        GOOGLE_TOKEN_URI=g.token_uri,
        ESPOCRM_BASE_URL=healthy.espocrm.base_url,
        GATEWAY_PUBLIC_URL=PUBLIC,
        REDIS_URL=healthy.redis_url,
        POSTGRES_HOST=healthy.postgres.host,
        POSTGRES_PORT=str(healthy.postgres.port),
        POSTGRES_DB=healthy.postgres.db,
        POSTGRES_USER=healthy.postgres.user,
        AIRFLOW_API_URL=healthy.airflow_api.url,
    )
    assert len(secrets) == 6
    out = subprocess.run(
        [sys.executable, "-m", "include.cli", "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL  airflow" in out.stdout and "ok    advoware  token from" in out.stdout
    webhook_secrets = [pair.split("=", 1)[1] for pair in secrets.pop("ESPOCRM_WEBHOOK_SECRET").split(",")]
    for value in [*secrets.values(), *webhook_secrets]:
        assert value not in out.stdout + out.stderr

    healthy_only = subprocess.run(
        [sys.executable, "-m", "include.cli", "check", *[f"--only={s}" for s in ("advoware", "hub")]],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert healthy_only.returncode == 0, healthy_only.stdout
