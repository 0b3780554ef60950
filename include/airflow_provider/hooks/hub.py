"""Airflow hook of the sync hub (PostgreSQL): the `sync_hub_default` connection as a psycopg DSN.

The connection is an ordinary `postgres` connection (AIRFLOW_CONN_SYNC_HUB_DEFAULT, written by
include.airflow_env); include/ code takes a plain DSN, so this hook only translates. It reads the
connection's fields itself instead of going through the postgres provider's hook, which would
import SQLAlchemy and the provider (~150 modules) into every task process for one URL.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from include import conn_ids
from include.airflow_provider.hooks.base import ProviderHook
from include.hub.db import Hub

# Extras that are libpq connection parameters (the rest, e.g. the provider's own, are ignored).
_LIBPQ_EXTRAS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
)


class HubHook(ProviderHook):
    conn_name_attr = "sync_hub_conn_id"
    default_conn_name = conn_ids.SYNC_HUB
    conn_type = "postgres"
    hook_name = "Sync hub"

    def dsn(self) -> str:
        """`postgresql://user:pw@host:port/db?sslmode=...` (psycopg's form)."""
        conn = self.get_connection(self.conn_id)
        auth = quote(conn.login or "", safe="")
        if conn.password:
            auth += ":" + quote(conn.password, safe="")
        host = conn.host or "127.0.0.1"
        netloc = f"{auth}@{host}" if auth else host
        if conn.port:
            netloc += f":{conn.port}"
        extra = conn.extra_dejson or {}
        query = urlencode({k: str(extra[k]) for k in _LIBPQ_EXTRAS if extra.get(k) not in (None, "")})
        return f"postgresql://{netloc}/{quote(conn.schema or 'postgres', safe='')}" + (f"?{query}" if query else "")

    def get_conn(self) -> Hub:
        """The hub's unit of work on this connection (the caller closes it)."""
        return Hub(self.dsn())


def hub_dsn(conn_id: str = conn_ids.SYNC_HUB) -> str:
    return HubHook(conn_id).dsn()
