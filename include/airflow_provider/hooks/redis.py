"""The `redis_default` connection as a URL (for include/ code that takes one) or a client.

Read with the plain BaseHook instead of the redis provider's RedisHook, which would import the
provider into every task process for these few fields. The database number is the connection's
`db` extra (as RedisHook reads it; AIRFLOW_CONN_REDIS_DEFAULT carries it as `?db=N`), TLS its
`ssl` extra.
"""

from __future__ import annotations

from urllib.parse import quote

import redis

from include import conn_ids
from include.airflow_provider.hooks.base import ProviderHook


class RedisUrlHook(ProviderHook):
    conn_name_attr = "redis_conn_id"
    default_conn_name = conn_ids.REDIS
    conn_type = "redis"
    hook_name = "Redis (Kanzlei Sync)"

    def url(self) -> str:
        conn = self.get_connection(self.conn_id)
        extra = conn.extra_dejson or {}
        auth = f":{quote(conn.password, safe='')}@" if conn.password else ""
        scheme = "rediss" if str(extra.get("ssl", "")).lower() == "true" else "redis"
        return f"{scheme}://{auth}{conn.host or '127.0.0.1'}:{conn.port or 6379}/{extra.get('db', 0)}"

    def get_conn(self) -> redis.Redis:
        """A client with short timeouts: a task must not hang on a lost Redis (the caller closes it)."""
        return redis.Redis.from_url(self.url(), socket_timeout=5, socket_connect_timeout=5)


def redis_url(conn_id: str = conn_ids.REDIS) -> str:
    return RedisUrlHook(conn_id).url()
