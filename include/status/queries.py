"""The status view's data: the hub's sections (include/hub/status.py) and the party queue's depth,
gathered into one plain, JSON-ready dict. A section whose source is down is replaced by an entry in
`errors` (exception class only), so the page still shows what is reachable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import redis

from include.hub.status import StatusQuery, read_status
from include.queue.party_queue import PartyQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sources:
    """Where the state lives. `redis_client` None means: the queue is not configured here."""

    hub_dsn: str
    redis_client: redis.Redis | None = None

    @classmethod
    def from_urls(cls, hub_dsn: str, redis_url: str | None) -> Sources:
        client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5) if redis_url else None
        return cls(hub_dsn, client)

    @classmethod
    def from_settings(cls, settings: Any = None) -> Sources:
        """The same .env as everything else (POSTGRES_*, REDIS_URL)."""
        if settings is None:
            from include.settings import get_settings

            settings = get_settings()
        return cls.from_urls(settings.postgres.dsn(), settings.redis_url)


# -- Redis -----------------------------------------------------------------------------------------
def queue_stats(client: redis.Redis, *, now: float | None = None) -> dict[str, Any]:
    """Depth and oldest ready age of the party queue (include.queue.party_queue, prefix vmh:webhook)."""
    return PartyQueue(client).stats(now=now).as_dict()


def _channel_margin_s() -> float:
    """SYNC_CHANNEL_RENEW_MARGIN_S: a channel within it shows as expiring (the planning renews it)."""
    try:
        from include.settings import get_settings

        return float(get_settings().sync.channel_renew_margin_s)
    except Exception:  # unreadable settings: the default margin
        return 86400.0


# -- everything ------------------------------------------------------------------------------------
def _section(errors: dict[str, str], name: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (psycopg.Error, redis.RedisError, OSError) as exc:
        # The class only: a driver message can name hosts or users, never needed on this page.
        errors[name] = type(exc).__name__
        log.warning("status view: %s unavailable (%s)", name, type(exc).__name__)
        return None


def collect(sources: Sources, query: StatusQuery | None = None, *, now: datetime | None = None) -> dict[str, Any]:
    """The whole status as a plain dict; `ok` is False when the hub or the queue could not be read.
    With `query.dead_letter_id`, also that dead letter's state (`dead_letter`, the notice after a replay)."""
    errors: dict[str, str] = {}
    now = now or datetime.now(UTC)
    hub = _section(
        errors, "hub", lambda: read_status(sources.hub_dsn, query, now=now, channel_margin_s=_channel_margin_s())
    )
    queue = None
    redis_client = sources.redis_client
    if redis_client is not None:
        queue = _section(errors, "queue", lambda: queue_stats(redis_client))
    hub = hub or {
        "employees": [],
        "party_run": None,
        "dead_letters": None,
        "party_links": None,
        "writes": [],
        "activity": None,
        "series_exceptions": None,
    }
    return {
        "generated_at": now.astimezone(UTC).isoformat(),
        "ok": not errors,
        "errors": errors,
        **hub,
        "queue": queue,
    }
