"""Shared fixtures: a throw-away hub database, a claimed Redis database, sandbox servers.

Everything here talks to the real PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) of the
machine. Several test sessions may run at once, so each one gets its own hub database and claims
its own Redis database number; servers listen on free ports.
"""

from __future__ import annotations

import os
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from tests.redis_helpers import OwnRedis

# Airflow writes airflow.cfg and its SQLite DB into AIRFLOW_HOME on first import: keep it out of ~.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-test-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# a full-length HS512 key (Airflow's generated default is short and pyjwt warns about it)
os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", uuid.uuid4().hex * 2)
# Google push (watch channels) is off in tests unless a test turns it on: .env's GATEWAY_PUBLIC_URL
# would otherwise have every calendar run open channels pointing at a gateway that is not there.
os.environ.setdefault("GOOGLE_PUSH_ENABLED", "false")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(os.path.dirname(__file__), "..", "dags"))

PG_HOST = os.environ.get("TEST_POSTGRES_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("TEST_POSTGRES_PORT", "5432"))
PG_USER = os.environ.get("TEST_POSTGRES_USER", "postgres")
REDIS_HOST = os.environ.get("TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "6379"))

HUB_TABLES = (
    "employee_calendars, calendar_links, advoware_create_intents, sync_plans, sync_runs, "
    "party_links, dead_letters, write_audit, series_exceptions, calendar_channels, employee_sync_leases"
)


def pg_dsn(db: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Each test reads the settings anew: tasks run in-process (dag.test) take them from the cached
    get_settings(), and tests change the environment."""
    from include.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# -- PostgreSQL --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def hub_dsn() -> Iterator[str]:
    """A migrated hub database of this test session; dropped at the end."""
    from include.hub.db import migrate

    name = f"hub_test_{uuid.uuid4().hex[:10]}"
    dsn = pg_dsn(name)
    migrate(dsn)
    yield dsn
    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def hub(hub_dsn: str) -> str:
    """The session's hub, emptied before the test."""
    with psycopg.connect(hub_dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {HUB_TABLES} RESTART IDENTITY")
    return hub_dsn


# -- Redis -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_db() -> Iterator[int]:
    """Claim a Redis database number (1..15) for this session so parallel sessions don't collide."""
    control = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0)
    token = uuid.uuid4().hex
    for db in range(1, 16):
        if control.set(f"test:claim:db:{db}", token, nx=True, ex=3600):
            break
    else:  # pragma: no cover - only when 15 sessions run at once
        pytest.fail("no free Redis database to claim")
    yield db
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    if control.get(f"test:claim:db:{db}") == token.encode():
        control.delete(f"test:claim:db:{db}")


@pytest.fixture
def redis_url(redis_db: int) -> str:
    """URL of the claimed Redis database, emptied before the test."""
    redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db).flushdb()
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}"


# -- Sandbox servers (session-wide, reset for each test) ---------------------------------------
@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A redis-server of the test's own (AOF, fsync always): one it may stop, kill or pause."""
    server = OwnRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)


def _serve(module: str) -> Iterator[str]:
    import importlib

    from sandbox.runner import ServerThread

    app = importlib.import_module(module).create_app()
    server = ServerThread(app).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _advoware_server() -> Iterator[str]:
    yield from _serve("sandbox.advoware")


@pytest.fixture(scope="session")
def _google_server() -> Iterator[str]:
    yield from _serve("sandbox.google_calendar")


@pytest.fixture(scope="session")
def _espocrm_server() -> Iterator[str]:
    yield from _serve("sandbox.espocrm")


def _reset(url: str) -> str:
    httpx.post(f"{url}/_sandbox/reset", timeout=10).raise_for_status()
    return url


@pytest.fixture
def advoware_url(_advoware_server: str) -> str:
    return _reset(_advoware_server)


@pytest.fixture
def google_url(_google_server: str) -> str:
    return _reset(_google_server)


@pytest.fixture
def espocrm_url(_espocrm_server: str) -> str:
    return _reset(_espocrm_server)


@pytest.fixture
def smtp_sink(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A local SMTP server as `smtp_default`, and ALERT_EMAIL_TO pointing into it."""
    from tests.smtp_sink import SmtpSink

    sink = SmtpSink().start()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", sink.connection())
    monkeypatch.setenv("ALERT_EMAIL_TO", "kanzlei-admin@kanzlei.example")
    try:
        yield sink
    finally:
        sink.stop()
