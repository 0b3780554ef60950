"""The environment of the local Airflow stack (`python -m devstack up`): `airflow standalone` with the
LocalExecutor and SQLite, or the separate components with Celery workers, on the ports of .env.
The connections and variables are the product's own (include/airflow_env.py), as in docker-compose.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from include.airflow_env import ROOT, connections, variables
from include.settings import Settings, get_settings

PRELOADING_LOCAL_EXECUTOR = "include.airflow_provider.executors.preload.PreloadingLocalExecutor"


def api_port(settings: Settings) -> int:
    """Airflow listens where the gateway expects it: the port of AIRFLOW_API_URL."""
    parts = urlsplit(settings.airflow_api.url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def jwt_secret(run_dir: Path) -> str:
    """One JWT secret for every Airflow component, generated once and kept in run_dir (0600)."""
    path = run_dir / "airflow-jwt-secret"
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    run_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


def metadata_db(settings: Settings) -> str:
    """The Celery stack's Airflow metadata database on the hub's PostgreSQL server (created by devstack)."""
    return f"{settings.postgres.db}_airflow"


def celery_env(settings: Settings) -> dict[str, str]:
    """AIRFLOW_* of the CeleryExecutor stack (`make scale-demo`): metadata and Celery results in
    PostgreSQL, the broker on its own Redis database (the work queue's number + 1)."""
    pg = settings.postgres
    pg_password = pg.password.get_secret_value()
    pg_auth = quote(pg.user, safe="") + (f":{quote(pg_password, safe='')}" if pg_password else "")
    pg_url = f"{pg_auth}@{pg.host}:{pg.port}/{metadata_db(settings)}"
    redis_parts = urlsplit(settings.redis_url)
    broker_db = int((redis_parts.path or "/0").strip("/") or 0) + 1
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{pg_url}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{pg_url}",
        "AIRFLOW__CELERY__BROKER_URL": urlunsplit(redis_parts._replace(path=f"/{broker_db}")),
        # Airflow's Celery defaults plus the task modules imported before a worker forks its pool
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "include.airflow_provider.executors.celery_config.CELERY_CONFIG",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        # several workers on one machine: each names itself (AIRFLOW_WORKER_NAME), see worker_name.py
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "include.airflow_provider.executors.worker_name.hostname",
    }


def build_env(
    settings: Settings | None = None,
    *,
    root: Path = ROOT,
    run_dir: Path | None = None,
    airflow_home: Path | None = None,
    dags_folder: Path | None = None,
    executor: str = "local",
) -> dict[str, str]:
    """The AIRFLOW_* variables of the local stack (merge into os.environ): `airflow standalone` with
    the LocalExecutor and SQLite, or (`executor="celery"`) the components and Celery workers."""
    settings = settings or get_settings()
    run_dir = run_dir or root / ".run"
    home = airflow_home or root / ".airflow"
    port = api_port(settings)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Airflow's LocalExecutor, importing the task modules once before it forks its workers, so
        # task processes do not import them each (include/airflow_provider/executors/preload.py).
        "AIRFLOW__CORE__EXECUTOR": PRELOADING_LOCAL_EXECUTOR,
        # LocalExecutor pre-forks this many workers: keep it small on a laptop.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{settings.airflow_api.username}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(run_dir / "airflow-passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret(run_dir),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        # Tasks reach the Execution API here; the default assumes port 8080.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        # A DAG file whose mtime changed is parsed again at the next refresh anyway (file_parsing_sort_mode
        # modified_time); unchanged files need no re-parse every 30 s (the idle stack's largest cost).
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        # The task supervisor notices a finished task only when its select() wakes: after the task's
        # sockets close it sleeps up to this interval (default 5 s). That delay is added to every task
        # slot and every executor event, and with beteiligte_sync's 5 s reschedule poke it makes the
        # late "success" of one poke meet the re-queued next poke (apache/airflow#71172): a false
        # failure that costs a retry and 15+ s. 2 s: one heartbeat per running task every 2 s.
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
    }
    if executor == "celery":
        env.update(celery_env(settings))
    elif executor == "local":
        # SQLite metadata: a writer waits for the lock instead of failing after 5 s (API 500s)
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS"] = (
            "include.airflow_provider.deployment.sqlite_metadata.CONNECT_ARGS"
        )
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"] = (
            "include.airflow_provider.deployment.sqlite_metadata.CONNECT_ARGS_ASYNC"
        )
    else:
        raise ValueError(f"unknown executor {executor!r} (local or celery)")
    env.update(connections(settings, root))
    env.update(variables(settings))
    return env
