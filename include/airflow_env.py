"""Airflow's connections and variables, built from the same settings (.env) as everything else.

docker-compose starts every Airflow component through `kanzlei-sync airflow exec ...`, which adds
these AIRFLOW_CONN_* / AIRFLOW_VAR_*; the local stack (devstack) sets the same. Airflow itself is
never imported here: this module only writes strings and files, so the gateway stays light.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from include import conn_ids
from include.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# Names whose values are never printed (environment keys, connection fields and extras).
_SECRET_MARKERS = ("PASSWORD", "SECRET", "API_KEY", "TOKEN")
MASK = "***"


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
    conns: dict[str, dict[str, Any]] = {
        conn_ids.ADVOWARE: {
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
        conn_ids.ESPOCRM: {
            "conn_type": "espocrm",
            "host": espo.base_url,
            "password": espo.api_key.get_secret_value(),
            "extra": {"entity": espo.entity, "timeout_s": espo.timeout_s},
        },
        conn_ids.GOOGLE_CALENDAR: {
            # The Google provider's connection type: its extras carry the key file (key_path).
            "conn_type": "google_cloud_platform",
            "extra": {
                "key_path": _abs(google.calendar_service_account_path, root)
                if google.calendar_service_account_path
                else "",
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
    if (
        smtp.host
    ):  # the alerts' mail server (include/airflow_provider/notifiers/alerts.py); none = alerts are only logged
        conns[conn_ids.SMTP] = {
            "conn_type": "smtp",
            "host": smtp.host,
            "port": smtp.port,
            "login": smtp.user,
            "password": smtp.password.get_secret_value(),
            "extra": {
                "from_email": smtp.from_email,
                "disable_tls": not smtp.starttls,
                "disable_ssl": not smtp.ssl,
                "timeout": smtp.timeout_s,
                "retry_limit": 2,
            },
        }
    env = {conn_ids.env_name(cid): json.dumps(body) for cid, body in conns.items()}
    env[conn_ids.env_name(conn_ids.SYNC_HUB)] = f"postgresql://{pg_auth}@{pg.host}:{pg.port}/{pg.db}"
    # RedisHook ignores the URI path: the database number must be the `db` extra (?db=N).
    redis_host = f"{redis_parts.hostname or '127.0.0.1'}:{redis_parts.port or 6379}"
    env[conn_ids.env_name(conn_ids.REDIS)] = f"{redis_scheme}://{redis_auth}{redis_host}/?db={redis_db}"
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
    return {f"AIRFLOW_VAR_{k.upper()}": json.dumps(v) if isinstance(v, bool) else str(v) for k, v in values.items()}


def _secret(name: str) -> bool:
    upper = name.upper()
    return any(m in upper for m in _SECRET_MARKERS) and not upper.endswith(("_URI", "_URL", "_PATH"))


def _masked_connection(value: str) -> str:
    """A connection with its password and secret extras replaced by MASK, the rest readable."""
    if value.startswith("{"):
        body = json.loads(value)
        for k in list(body):
            if _secret(k) and body[k]:
                body[k] = MASK
        extra = body.get("extra")
        if isinstance(extra, dict):
            body["extra"] = {k: (MASK if _secret(k) and v else v) for k, v in extra.items()}
        return json.dumps(body)
    return masked_url(value)


def masked_url(value: str) -> str:
    """A URL with its password (if any) replaced by MASK."""
    parts = urlsplit(value)
    if parts.password:
        netloc = f"{parts.username or ''}:{MASK}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return value


def masked(env: dict[str, str]) -> dict[str, str]:
    """The environment for printing: secrets masked, connections readable except their secrets."""
    out = {}
    for k, v in env.items():
        if k.startswith("AIRFLOW_CONN_"):
            out[k] = _masked_connection(v)
        else:
            out[k] = MASK if _secret(k) and v else v
    return out


def airflow_env(settings: Settings, root: Path = ROOT) -> dict[str, str]:
    """Everything an Airflow component needs from .env: its connections and variables."""
    return {**connections(settings, root), **variables(settings)}
