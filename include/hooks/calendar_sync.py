"""What the calendar DAG's tasks need, built from Airflow connections: a `SyncContext`.

Connections: `advoware_default`, `google_calendar_default`, `sync_hub_default`, `redis_default`.
The DAG file imports nothing of this at parse time; each task body calls `sync_context()`.
"""

from __future__ import annotations

import functools

from include.calendar_sync.context import SyncContext
from include.hooks.advoware import AdvowareHook
from include.hooks.alerts import send
from include.hooks.google_calendar import GoogleCalendarSyncHook
from include.hooks.hub import hub_dsn
from include.hooks.redis_conn import redis_url
from include.settings import get_settings


def sync_context() -> SyncContext:
    """Clients for one task, built when first used: Advoware and Google from their connections,
    sharing the Redis of `redis_default` (token cache, rate limiter); the hub's DSN from
    `sync_hub_default`. A task that writes nothing reads only the hub connection."""
    shared_redis = functools.cache(redis_url)  # one connection look-up for both clients
    ctx = SyncContext.lazy(hub_dsn(), lambda: AdvowareHook(redis_url=shared_redis()).get_conn(),
                           lambda: GoogleCalendarSyncHook().get_client(redis_url=shared_redis()),
                           get_settings())
    ctx.notify = send  # a repaired calendar: one mail (include/hooks/alerts.py)
    return ctx
