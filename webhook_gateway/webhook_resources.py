"""What the EspoCRM webhooks and the dead-letter routes share: the party queue (async for the hot path,
sync for replays and the dead-letter outbox), the coalesced `beteiligte_sync` trigger, the secrets.

Opened with the app (webhook_gateway/deps.py); every client connects on first use, so the gateway
starts and answers while Redis or Airflow are still down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from include.airflow_api import AirflowApi
from include.dag_ids import BETEILIGTE_SYNC_DAG
from include.hub import dead_letters
from include.hub.db import connect
from include.queue.party_queue import AsyncPartyQueue, PartyQueue
from include.settings import Settings
from webhook_gateway.metrics import TRIGGERS
from webhook_gateway.trigger_coalescer import TriggerCoalescer

log = logging.getLogger("webhook_gateway.webhooks")


class WebhookResources:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue = AsyncPartyQueue.from_url(settings.redis_url)
        self.sync_redis = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
        self.sync_queue = PartyQueue(
            self.sync_redis, max_attempts=settings.sync.party_max_attempts, lease_s=settings.sync.party_lease_s
        )
        self.airflow = (
            AirflowApi.from_settings(settings, redis_client=self.sync_redis) if settings.airflow_api.url else None
        )
        self.trigger = TriggerCoalescer(self.trigger_once if self.airflow is not None else None)
        self.secrets = settings.espocrm.webhook_secrets()  # parsed once, not per webhook
        self._last_airflow_warning = 0.0
        self._background: set[asyncio.Future[Any]] = set()

    def in_background(self, fn: Callable[[], None]) -> None:
        """Run a blocking job in a worker thread after the answer (kept referenced until done)."""
        future = asyncio.get_running_loop().run_in_executor(None, fn)
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    def trigger_once(self) -> None:
        if self.airflow is None:
            return
        try:
            outcome = self.airflow.trigger_coalesced(BETEILIGTE_SYNC_DAG)
            TRIGGERS.labels(outcome).inc()
        except Exception as exc:  # Airflow down: the ids wait for the scheduled sweep
            TRIGGERS.labels("failed").inc()
            now = time.monotonic()
            if now - self._last_airflow_warning > 60:  # once a minute, not once per webhook
                self._last_airflow_warning = now
                log.warning(
                    "could not trigger %s (events wait for the sweep): %s", BETEILIGTE_SYNC_DAG, type(exc).__name__
                )

    def drain_rejected(self) -> int:
        """Move parked dead letters from the Redis outbox into the hub table."""
        dsn = self.settings.postgres.dsn()

        def sink(entry: Mapping[str, Any]) -> None:
            with connect(dsn) as conn:
                dead_letters.add_from_outbox(conn, dict(entry))

        return self.sync_queue.drain_dead_letter_outbox(sink)

    def drain_quietly(self) -> None:
        try:
            self.drain_rejected()
        except Exception as exc:  # hub down: the entries stay in the Redis outbox
            log.warning("dead-letter outbox not drained: %s", type(exc).__name__)

    async def close(self) -> None:
        await self.trigger.wait()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self.queue.close()
        self.sync_redis.close()
        if self.airflow is not None:
            self.airflow.close()
