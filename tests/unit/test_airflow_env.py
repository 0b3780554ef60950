"""The Airflow environment built from the settings: connections Airflow parses back to the same values."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from pydantic import SecretStr

from devstack import airflow_env as stack_env
from include import airflow_env
from include.settings import AdvowareSettings, AirflowApiSettings, GoogleSettings, PostgresSettings, Settings


def _settings() -> Settings:
    return Settings(
        redis_url="redis://:r%40d:s@10.0.0.5:6380/3",
        postgres=PostgresSettings(host="db.local", port=5433, db="hub", user="sync", password=SecretStr("p@ss/w:rd")),
        advoware=AdvowareSettings(
            base_url="https://adv.example",
            username="u",
            password=SecretStr("pw"),
            api_key=SecretStr("a2V5"),
            kanzlei="K",
            write_protection=True,
        ),
        google=GoogleSettings(calendar_service_account_path="keys/sa.json", api_endpoint="http://g/calendar/v3/"),
        airflow_api=AirflowApiSettings(url="http://127.0.0.1:18080", username="admin", password=SecretStr("x")),
    )


def _conn(env: dict[str, str], conn_id: str):  # -> airflow Connection
    from airflow.models.connection import Connection

    value = env[f"AIRFLOW_CONN_{conn_id.upper()}"]
    if value.startswith("{"):
        return Connection.from_json(value, conn_id=conn_id)
    return Connection(conn_id, uri=value)


def test_connections_parse_back_to_the_settings(tmp_path: Path) -> None:
    env = airflow_env.connections(_settings(), root=tmp_path)
    hub = _conn(env, "sync_hub_default")
    assert (hub.conn_type, hub.host, hub.port, hub.schema, hub.login, hub.password) == (
        "postgres",
        "db.local",
        5433,
        "hub",
        "sync",
        "p@ss/w:rd",
    )
    red = _conn(env, "redis_default")
    # RedisHook reads the database from extra["db"], never from the path.
    assert (red.host, red.port, red.password, str(red.extra_dejson["db"])) == ("10.0.0.5", 6380, "r@d:s", "3")
    adv = _conn(env, "advoware_default")
    assert (adv.conn_type, adv.host, adv.login, adv.password) == ("advoware", "https://adv.example", "u", "pw")
    assert adv.extra_dejson["api_key"] == "a2V5" and adv.extra_dejson["write_protection"] is True
    google = _conn(env, "google_calendar_default")
    assert google.conn_type == "google_cloud_platform"
    assert google.extra_dejson["key_path"] == str(tmp_path / "keys" / "sa.json")  # absolute for workers
    assert google.extra_dejson["api_endpoint"] == "http://g/calendar/v3/"


def test_build_env_runs_airflow_on_the_configured_port(tmp_path: Path) -> None:
    env = stack_env.build_env(_settings(), root=tmp_path, run_dir=tmp_path / "run", airflow_home=tmp_path / "home")
    assert env["AIRFLOW__API__PORT"] == "18080"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "False"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{tmp_path / 'home' / 'airflow.db'}"
    assert env["AIRFLOW_VAR_ADVOWARE_WRITE_PROTECTION"] == "true"
    # The JWT secret is generated once and shared by every later start.
    again = stack_env.build_env(_settings(), root=tmp_path, run_dir=tmp_path / "run")
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == again["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 32


def test_password_file_holds_the_configured_login(tmp_path: Path) -> None:
    path = airflow_env.write_passwords_file(tmp_path / "pw.json", _settings())
    assert json.loads(path.read_text()) == {"admin": "x"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "x" not in json.dumps(airflow_env.masked({"AIRFLOW_API_PASSWORD": "x"}))


def test_sqlite_metadata_waits_for_its_lock_and_postgres_gets_no_sqlite_arguments(tmp_path: Path) -> None:
    """The demo's SQLite: a writer waits up to 30 s for the lock (the driver's 5 s made the API answer
    500 while the scheduler wrote); the Celery stack's PostgreSQL must not get sqlite3's arguments."""
    import importlib

    def resolve(path: str) -> dict:  # as Airflow's conf.getimport does
        module, _, name = path.rpartition(".")
        return getattr(importlib.import_module(module), name)

    local = stack_env.build_env(_settings(), root=tmp_path, run_dir=tmp_path / "run")
    assert local["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    assert resolve(local["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"])["timeout"] >= 30
    assert resolve(local["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"])["timeout"] >= 30
    celery = stack_env.build_env(_settings(), root=tmp_path, run_dir=tmp_path / "run", executor="celery")
    assert celery["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert not any(k.startswith("AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS") for k in celery)
