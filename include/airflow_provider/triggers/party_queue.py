"""The trigger `PartyWorkSensor` defers to: ends the task as soon as queued party work is due.

The trigger does not poll: the gateway's enqueue script publishes on the pub/sub channel named like
the pending set (`vmh:webhook:pending`) whenever it marks ids pending, and the trigger sleeps on that
subscription until the next id is due: subscribe, then read the queue (so nothing published before
the subscription is missed), then wait for a message or for the earliest not-before time (a nacked
id's backoff, a claim's lease), whichever comes first. Success when an id is due, skipped after
`idle_timeout_s` without work.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSkippedEvent, TaskSuccessEvent

from include import conn_ids
from include.queue.party_queue import DEFAULT_PREFIX

CLASSPATH = "include.airflow_provider.triggers.party_queue.PartyWorkTrigger"


async def _next_due(client: Any, pending: str, claimed: str) -> float | None:
    """Epoch seconds when the earliest pending id is ready or the earliest claim expires (None: empty)."""
    firsts = [await client.zrange(key, 0, 0, withscores=True) for key in (pending, claimed)]
    scores = [float(first[0][1]) for first in firsts if first]
    return min(scores) if scores else None


class PartyWorkTrigger(BaseTrigger):
    def __init__(
        self, redis_conn_id: str = conn_ids.REDIS, prefix: str = DEFAULT_PREFIX, idle_timeout_s: float = 60.0
    ) -> None:
        super().__init__()
        self.redis_conn_id = redis_conn_id
        self.prefix = prefix
        self.idle_timeout_s = float(idle_timeout_s)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "redis_conn_id": self.redis_conn_id,
            "prefix": self.prefix,
            "idle_timeout_s": self.idle_timeout_s,
        }

    async def run(self) -> AsyncIterator[Any]:
        import redis.asyncio as aioredis
        from asgiref.sync import sync_to_async

        from include.airflow_provider.hooks.redis import redis_url

        url = await sync_to_async(redis_url)(self.redis_conn_id)
        pending, claimed = f"{self.prefix}:pending", f"{self.prefix}:claimed"
        client = aioredis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        deadline = time.monotonic() + self.idle_timeout_s
        try:
            await pubsub.subscribe(pending)  # before the first look: no enqueue slips in between
            while True:
                due = await _next_due(client, pending, claimed)
                now = time.time()
                if due is not None and due <= now:
                    self.log.info("party work is ready")
                    yield TaskSuccessEvent()
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    self.log.info("no party work within %.0fs", self.idle_timeout_s)
                    yield TaskSkippedEvent()
                    return
                wait = min(left, due - now) if due is not None else left
                # a message (new ids) or the time until the next id is due, whichever comes first
                await pubsub.get_message(timeout=max(wait, 0.05))
        finally:
            await pubsub.aclose()
            await client.aclose()
