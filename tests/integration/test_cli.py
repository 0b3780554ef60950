"""The operator's command line `kanzlei-sync`, run as a process the way an administrator (or compose)
runs it: migrate, drain, show, airflow passwords-file / exec. Settings come from the environment."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from sandbox import advoware as adv_sbx
from tests.conftest import PG_HOST, PG_PORT, PG_USER, pg_dsn
from tests.party_helpers import ENTITY, ESPO_KEY, CrmUser, advoware_parties, links, make_queue

ROOT = Path(__file__).resolve().parents[2]
SECRETS = {
    "POSTGRES_PASSWORD": "pg-Secret-4711",
    "ADVOWARE_PASSWORD": "adv-Secret-0815",
    "ADVOWARE_API_KEY": "YXBpLVNlY3JldC0xMjM=",
    "ESPOCRM_API_KEY": "espo-Secret-42",
    "GATEWAY_API_TOKEN": "gw-Secret-99",
    "AIRFLOW_API_PASSWORD": "af-Secret-7",
}


def run(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    # an empty working directory: no .env of the checkout may leak into what the command reads
    return subprocess.run(
        [sys.executable, "-m", "include.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=env["CLI_CWD"],
    )


def base_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ADVOWARE_", "ESPOCRM_", "POSTGRES_", "GATEWAY_", "AIRFLOW_API_", "REDIS_"))
    }
    return {**keep, "PYTHONPATH": str(ROOT), "CLI_CWD": str(tmp_path), "LOG_LEVEL": "WARNING", **extra}


@pytest.fixture
def fresh_db() -> Iterator[str]:
    name = f"hub_test_cli_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrate_creates_a_missing_hub_database(tmp_path: Path) -> None:
    """compose's first start: the hub database does not exist yet; airflow-init's migrate makes it."""
    name = f"hub_test_cli_new_{uuid.uuid4().hex[:8]}"
    env = base_env(
        tmp_path,
        POSTGRES_HOST=PG_HOST,
        POSTGRES_PORT=str(PG_PORT),
        POSTGRES_USER=PG_USER,
        POSTGRES_PASSWORD="",
        POSTGRES_DB=name,
    )
    try:
        done = run("migrate", env=env)
        assert done.returncode == 0, done.stderr
        assert f"sync hub {name}" in done.stdout and "up to date" in done.stdout
    finally:
        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrate_creates_the_hub_tables_and_is_idempotent(tmp_path: Path, fresh_db: str) -> None:
    env = base_env(
        tmp_path,
        POSTGRES_HOST=PG_HOST,
        POSTGRES_PORT=str(PG_PORT),
        POSTGRES_USER=PG_USER,
        POSTGRES_PASSWORD="",
        POSTGRES_DB=fresh_db,
    )
    first = run("migrate", env=env)
    assert first.returncode == 0, first.stderr
    with psycopg.connect(pg_dsn(fresh_db)) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        head = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert f"sync hub {fresh_db}" in first.stdout
    assert f"up to date (revision {head[0]}, was None)" in first.stdout
    assert {"calendar_links", "party_links", "dead_letters", "write_audit", "sync_runs"} <= tables
    again = run("migrate", env=env)  # compose runs it on every start
    assert again.returncode == 0, again.stderr
    assert f"up to date (revision {head[0]})" in again.stdout
    with psycopg.connect(pg_dsn(fresh_db)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == head


def _secret_env(tmp_path: Path) -> dict[str, str]:
    return base_env(
        tmp_path,
        **SECRETS,
        POSTGRES_HOST="db.kanzlei.internal",
        POSTGRES_USER="sync",
        REDIS_URL="redis://:redis-Secret-5@cache.kanzlei.internal:6379/2",
        ADVOWARE_BASE_URL="https://advoware.kanzlei.internal/",
        ADVOWARE_USERNAME="sync-user",
        ESPOCRM_BASE_URL="https://crm.kanzlei.example/api/v1/",
        AIRFLOW_API_URL="http://airflow.kanzlei.internal:8080",
        AIRFLOW_API_USERNAME="admin",
    )


@pytest.mark.parametrize("what", ["settings", "connections"])
def test_show_never_prints_a_secret_but_shows_where_things_are(tmp_path: Path, what: str) -> None:
    out = run("show", what, env=_secret_env(tmp_path))
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    for secret in [*SECRETS.values(), "redis-Secret-5"]:
        assert secret not in text, (what, secret)
    for host in ("db.kanzlei.internal", "cache.kanzlei.internal", "advoware.kanzlei.internal"):
        assert host in text, (what, host)
    if what == "settings":
        shown = json.loads(out.stdout)
        assert shown["postgres"]["password"] == "**********"
        assert shown["advoware"]["username"] == "sync-user"
    else:
        names = {line.split("=", 1)[0] for line in out.stdout.splitlines()}
        assert {"AIRFLOW_CONN_SYNC_HUB_DEFAULT", "AIRFLOW_CONN_ADVOWARE_DEFAULT", "AIRFLOW_CONN_REDIS_DEFAULT"} <= names


def test_airflow_passwords_file_is_private_and_holds_the_api_login(tmp_path: Path) -> None:
    target = tmp_path / "run" / "passwords.json"
    out = run("airflow", "passwords-file", str(target), env=_secret_env(tmp_path))
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text()) == {"admin": SECRETS["AIRFLOW_API_PASSWORD"]}
    assert SECRETS["AIRFLOW_API_PASSWORD"] not in out.stdout


def test_airflow_exec_hands_the_component_its_connections(tmp_path: Path) -> None:
    # compose starts every Airflow component this way: the command sees the connections of .env
    probe = (
        "import os, json; print(json.dumps({k: v for k, v in os.environ.items() "
        "if k.startswith(('AIRFLOW_CONN_', 'AIRFLOW_VAR_'))}))"
    )
    out = run("airflow", "exec", sys.executable, "-c", probe, env=_secret_env(tmp_path))
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    from airflow.models.connection import Connection

    hub = Connection("sync_hub_default", uri=seen["AIRFLOW_CONN_SYNC_HUB_DEFAULT"])
    assert (hub.host, hub.login, hub.password) == ("db.kanzlei.internal", "sync", SECRETS["POSTGRES_PASSWORD"])
    assert "AIRFLOW_CONN_ADVOWARE_DEFAULT" in seen
    assert run("airflow", "exec", env=_secret_env(tmp_path)).returncode == 2  # no command: usage error


def test_drain_once_syncs_the_queued_parties(
    tmp_path: Path, advoware_url: str, espocrm_url: str, redis_url: str, hub: str
) -> None:
    user = CrmUser(espocrm_url)
    made = [user.create(name=f"Partei {i}", ort="Berlin") for i in range(3)]
    make_queue(redis_url).enqueue([m["id"] for m in made], "create")
    info = psycopg.conninfo.conninfo_to_dict(hub)
    env = base_env(
        tmp_path,
        REDIS_URL=redis_url,
        POSTGRES_HOST=PG_HOST,
        POSTGRES_PORT=str(PG_PORT),
        POSTGRES_DB=info["dbname"],
        POSTGRES_USER=PG_USER,
        POSTGRES_PASSWORD="",
        ADVOWARE_BASE_URL=advoware_url,
        ADVOWARE_AUTH_URL="",
        ADVOWARE_CONFIGURATOR_URL="",
        ADVOWARE_USERNAME=adv_sbx.USERNAME,
        ADVOWARE_PASSWORD=adv_sbx.PASSWORD,
        ADVOWARE_APP_ID=adv_sbx.APP_ID,
        ADVOWARE_API_KEY=adv_sbx.API_KEY,
        ADVOWARE_KANZLEI=adv_sbx.KANZLEI,
        ADVOWARE_DATABASE=adv_sbx.DATABASE,
        ADVOWARE_WRITE_PROTECTION="false",
        ESPOCRM_BASE_URL=espocrm_url,
        ESPOCRM_API_KEY=ESPO_KEY,
        ESPOCRM_ENTITY=ENTITY,
    )
    out = run("drain", "--once", env=env)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(lines[0]["claimed"]) == sorted(m["id"] for m in made)
    assert lines[-1]["report"]["acked"] == 3
    hub_links = links(hub)
    assert {hub_links[m["id"]]["status"] for m in made} == {"linked"}
    assert sorted(advoware_parties(advoware_url)) == sorted(hub_links[m["id"]]["bet_nr"] for m in made)
    assert "Partei" not in out.stdout + out.stderr  # ids only, never a party's name
