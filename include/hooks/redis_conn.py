"""The `redis_default` connection as a URL, for include/ code that takes one.

Read with the plain BaseHook instead of the redis provider's RedisHook, which would import the
provider into every task process for these few fields. The database number is the connection's
`db` extra (as RedisHook reads it; AIRFLOW_CONN_REDIS_DEFAULT carries it as `?db=N`), TLS its
`ssl` extra.
"""

from __future__ import annotations

from urllib.parse import quote

from airflow.sdk import BaseHook

REDIS_CONN_ID = "redis_default"


def redis_url(conn_id: str = REDIS_CONN_ID) -> str:
    conn = BaseHook.get_connection(conn_id)
    extra = conn.extra_dejson or {}
    auth = f":{quote(conn.password, safe='')}@" if conn.password else ""
    scheme = "rediss" if str(extra.get("ssl", "")).lower() == "true" else "redis"
    return f"{scheme}://{auth}{conn.host or '127.0.0.1'}:{conn.port or 6379}/{extra.get('db', 0)}"
