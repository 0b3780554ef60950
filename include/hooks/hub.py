"""Airflow hook of the sync hub (PostgreSQL): the `sync_hub_default` connection as a psycopg DSN.

The connection is an ordinary `postgres` connection (AIRFLOW_CONN_SYNC_HUB_DEFAULT, written by
include.airflow_env); include/ code takes a plain DSN, so this hook only translates.
"""

from __future__ import annotations

from airflow.providers.postgres.hooks.postgres import PostgresHook


class HubHook(PostgresHook):
    conn_name_attr = "postgres_conn_id"
    default_conn_name = "sync_hub_default"
    hook_name = "Sync hub"

    def __init__(self, sync_hub_conn_id: str = default_conn_name, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(postgres_conn_id=sync_hub_conn_id, **kwargs)

    def dsn(self) -> str:
        """`postgresql://user:pw@host:port/db?...` (psycopg's form, without SQLAlchemy's driver tag)."""
        uri = self.get_uri()
        for prefix in ("postgresql+psycopg2://", "postgresql+psycopg://", "postgres://"):
            if uri.startswith(prefix):
                return "postgresql://" + uri[len(prefix):]
        return uri
