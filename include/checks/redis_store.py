"""Redis: reachable, its persistence (the party queue must survive a restart), the queue's depth."""

from __future__ import annotations

import redis

from include.checks.verdict import Verdict, fail, ok, skip
from include.queue.party_queue import PartyQueue
from include.settings import Settings

SERVICE = "redis"
DURABLE = (
    "redis-server --appendonly yes --appendfsync always (a webhook acknowledged to EspoCRM must survive a restart)"
)


def check(settings: Settings) -> list[Verdict]:
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=5)
    parsed = client.connection_pool.connection_kwargs
    where = f"{parsed.get('host', '?')}:{parsed.get('port', '?')} db {parsed.get('db', 0)}"
    try:
        client.ping()
    except redis.RedisError as exc:
        return [fail(SERVICE, f"{where}: not reachable ({type(exc).__name__})", "check REDIS_URL and that Redis runs")]
    try:
        verdicts = [ok(SERVICE, f"{where}: answers PING"), _persistence(client, settings), _queue(client)]
    except redis.RedisError as exc:
        verdicts = [fail(SERVICE, f"{where}: {type(exc).__name__} while reading", "check Redis' log")]
    finally:
        client.close()
    return verdicts


def _persistence(client: redis.Redis, settings: Settings) -> Verdict:
    try:
        aof = client.config_get("appendonly").get("appendonly")
        fsync = client.config_get("appendfsync").get("appendfsync")
    except redis.ResponseError:  # CONFIG disabled (managed Redis): the provider's settings apply
        return skip(SERVICE, "persistence: CONFIG GET not allowed", "make sure the provider keeps an append-only file")
    state = f"persistence: appendonly {aof}, appendfsync {fsync}"
    if aof == "yes":
        return ok(SERVICE, state)
    if settings.sandbox_mode:
        return skip(SERVICE, f"{state} (sandbox: acceptable)", DURABLE)
    return fail(SERVICE, state, DURABLE)


def _queue(client: redis.Redis) -> Verdict:
    s = PartyQueue(client).stats()
    return ok(
        SERVICE,
        f"party queue: {s.pending} pending (oldest ready {s.oldest_ready_age_s:.0f} s), "
        f"{s.claimed} claimed, {s.outbox} in the dead-letter outbox",
    )
