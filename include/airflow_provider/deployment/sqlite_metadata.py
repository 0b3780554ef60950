"""Connection arguments for Airflow's metadata in SQLite (`make demo`'s `airflow standalone` only).

SQLite allows one writer at a time; a writer that finds the database locked gives up after the
driver's busy timeout (5 s by default) and the API answers 500 "Database error" (seen on triggers and
pool writes while the scheduler wrote). Waiting up to 30 s instead turns that into a short delay.
AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS=include.airflow_provider.deployment.sqlite_metadata.CONNECT_ARGS
(sqlite3) and ..._CONNECT_ARGS_ASYNC=include.airflow_provider.deployment.sqlite_metadata.CONNECT_ARGS_ASYNC
(aiosqlite); never with PostgreSQL (psycopg takes no `timeout`).
"""

from __future__ import annotations

from typing import Any

BUSY_TIMEOUT_S = 30.0

CONNECT_ARGS: dict[str, Any] = {"timeout": BUSY_TIMEOUT_S}
CONNECT_ARGS_ASYNC: dict[str, Any] = {"timeout": BUSY_TIMEOUT_S}
