"""The environment Airflow runs in, built from the same settings (.env) as everything else.

`make demo` (devstack) starts `airflow standalone` with this environment; docker-compose
sets the same AIRFLOW_CONN_* / AIRFLOW_VAR_* names. Airflow itself is never imported here: this
module only writes strings and files, so the gateway and the tests stay light.

CLI: `python -m include.airflow_env passwords-file PATH` writes the SimpleAuthManager password file
(used by the compose `airflow-init` service); `exec COMMAND...` runs a command with the
AIRFLOW_CONN_* / AIRFLOW_VAR_* added (the compose Airflow services start through it);
`show` prints the environment with secrets masked.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from include.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent

PRELOADING_LOCAL_EXECUTOR = "include.hooks.preload.PreloadingLocalExecutor"

# Keys in the built environment whose values must never be printed.
_SECRET_MARKERS = ("PASSWORD", "SECRET", "AIRFLOW_CONN_", "API_KEY", "TOKEN")


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


def write_passwords_file(path: Path, settings: Settings) -> Path:
    """Pre-seed SimpleAuthManager's password file so the admin password is AIRFLOW_API_PASSWORD.

    Airflow 3.3.2 only generates passwords for users missing from this file, so the login is
    known and the gateway can get a token with the same .env values.
    """
    api = settings.airflow_api
    password = api.password.get_secret_value()
    if not password:
        raise ValueError("AIRFLOW_API_PASSWORD is empty: set it in .env")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({api.username: password}, fh)
    return path


def _abs(path: str, root: Path) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else (root / p).resolve())


def connections(settings: Settings, root: Path = ROOT) -> dict[str, str]:
    """AIRFLOW_CONN_* values (JSON form: no URL-encoding pitfalls with keys and secrets)."""
    adv, espo, google, pg = settings.advoware, settings.espocrm, settings.google, settings.postgres
    redis_parts = urlsplit(settings.redis_url)
    redis_db = (redis_parts.path or "/0").strip("/") or "0"
    redis_auth = ""
    if redis_parts.password:
        # urlsplit leaves percent-escapes in place: decode, then encode once for the new URI.
        user, password = unquote(redis_parts.username or ""), unquote(redis_parts.password)
        redis_auth = f"{quote(user, safe='')}:{quote(password, safe='')}@"
    redis_scheme = redis_parts.scheme or "redis"
    pg_password = pg.password.get_secret_value()
    pg_auth = quote(pg.user, safe="") + (f":{quote(pg_password, safe='')}" if pg_password else "")
    conns = {
        "advoware_default": {
            "conn_type": "advoware",
            "host": adv.base_url,
            "login": adv.username,
            "password": adv.password.get_secret_value(),
            "extra": {
                "auth_url": adv.auth_url,
                "configurator_url": adv.configurator_url,
                "app_id": adv.app_id,
                "api_key": adv.api_key.get_secret_value(),
                "kanzlei": adv.kanzlei,
                "database": adv.database,
                "role": adv.role,
                "product": adv.product,
                "write_protection": adv.write_protection,
                "timeout_s": adv.timeout_s,
            },
        },
        "espocrm_default": {
            "conn_type": "espocrm",
            "host": espo.base_url,
            "password": espo.api_key.get_secret_value(),
            "extra": {"entity": espo.entity, "timeout_s": espo.timeout_s},
        },
        "google_calendar_default": {
            # The Google provider's connection type: its extras carry the key file (key_path).
            "conn_type": "google_cloud_platform",
            "extra": {
                "key_path": _abs(google.calendar_service_account_path, root)
                if google.calendar_service_account_path else "",
                "scope": "https://www.googleapis.com/auth/calendar",
                "delegation": google.delegation,
                "api_endpoint": google.api_endpoint,
                "batch_uri": google.batch_uri,
                "token_uri": google.token_uri,
                "acl_role": google.acl_role,
            },
        },
    }
    smtp = settings.smtp
    if smtp.host:  # the alerts' mail server (include/hooks/alerts.py); none = alerts are only logged
        conns["smtp_default"] = {
            "conn_type": "smtp", "host": smtp.host, "port": smtp.port, "login": smtp.user,
            "password": smtp.password.get_secret_value(),
            "extra": {"from_email": smtp.from_email, "disable_tls": not smtp.starttls, "disable_ssl": not smtp.ssl,
                      "timeout": smtp.timeout_s, "retry_limit": 2},
        }
    env = {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(body) for cid, body in conns.items()}
    env["AIRFLOW_CONN_SYNC_HUB_DEFAULT"] = f"postgresql://{pg_auth}@{pg.host}:{pg.port}/{pg.db}"
    # RedisHook ignores the URI path: the database number must be the `db` extra (?db=N).
    redis_host = f"{redis_parts.hostname or '127.0.0.1'}:{redis_parts.port or 6379}"
    env["AIRFLOW_CONN_REDIS_DEFAULT"] = f"{redis_scheme}://{redis_auth}{redis_host}/?db={redis_db}"
    return env


def variables(settings: Settings) -> dict[str, str]:
    """AIRFLOW_VAR_*: the sync policy, readable with Variable.get("sync_conflict_policy") etc."""
    s = settings.sync
    values = {
        "sandbox_mode": settings.sandbox_mode,
        "sync_window_days_back": s.window_days_back,
        "sync_window_days_ahead": s.window_days_ahead,
        "sync_conflict_policy": s.conflict_policy,
        "sync_include_shared_pool": s.include_shared_pool,
        "sync_delete_threshold_ratio": s.delete_threshold_ratio,
        "sync_delete_threshold_min": s.delete_threshold_min,
        "advoware_write_protection": settings.advoware.write_protection,
    }
    return {f"AIRFLOW_VAR_{k.upper()}": json.dumps(v) if isinstance(v, bool) else str(v)
            for k, v in values.items()}


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
        "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": "include.hooks.celery_config.CELERY_CONFIG",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        # several workers on one machine: each names itself (AIRFLOW_WORKER_NAME), see worker_name.py
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "include.hooks.worker_name.hostname",
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
        # task processes do not import them each (include/hooks/preload.py).
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
    elif executor != "local":
        raise ValueError(f"unknown executor {executor!r} (local or celery)")
    env.update(connections(settings, root))
    env.update(variables(settings))
    return env


def masked(env: dict[str, str]) -> dict[str, str]:
    return {k: ("***" if any(m in k for m in _SECRET_MARKERS) else v) for k, v in env.items()}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "passwords-file":
        print(write_passwords_file(Path(args[1]), get_settings()))
        return 0
    if len(args) >= 2 and args[0] == "exec":
        # docker-compose: every Airflow component starts through here, so its connections and
        # variables come from the same settings as the gateway's.
        settings = get_settings()
        env = {**os.environ, **connections(settings), **variables(settings)}
        os.execvpe(args[1], args[1:], env)
    if args == ["show"]:
        for k, v in sorted(masked(build_env()).items()):
            print(f"{k}={v}")
        return 0
    print("usage: python -m include.airflow_env passwords-file PATH | show | exec COMMAND [ARGS...]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
