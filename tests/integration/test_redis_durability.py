"""Durability of the webhook path with a Redis of the test's own (append-only file, fsync always):
Redis stopped → 503 (EspoCRM retries) and the re-delivery after the restart is processed;
`kill -9` right after a 2xx and a restart → the event is still pending."""

from __future__ import annotations

import json
import signal
import time

import redis
from fastapi.testclient import TestClient

from include.queue.party_queue import PartyQueue
from tests.integration.test_webhook_ingest import build_settings, signed
from tests.redis_helpers import OwnRedis, is_pending
from webhook_gateway.app import create_app


def deliver(client: TestClient, body: bytes):
    return client.post("/webhooks/vmh/beteiligte/update", content=body, headers=signed(body))


def test_redis_down_answers_503_and_the_redelivery_is_processed(own_redis: OwnRedis, hub: str) -> None:
    body = json.dumps([{"id": "dur1"}, {"id": "dur2"}]).encode()
    with TestClient(create_app(build_settings(own_redis.url, hub))) as c:
        assert deliver(c, json.dumps([{"id": "warmup"}]).encode()).status_code == 200  # pool has a connection
        own_redis.stop()
        started = time.monotonic()
        r = deliver(c, body)
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert time.monotonic() - started < 5  # quick, so EspoCRM's sender is not held up
        own_redis.start()  # same port, same directory
        r = deliver(c, body)  # EspoCRM's retry
        assert r.status_code == 200 and r.json()["accepted"] == 2
    q = PartyQueue(redis.Redis.from_url(own_redis.url))
    assert {p.id for p in q.claim()} == {"warmup", "dur1", "dur2"}


def test_kill_9_right_after_the_2xx_keeps_the_event(own_redis: OwnRedis, hub: str) -> None:
    with TestClient(create_app(build_settings(own_redis.url, hub))) as c:
        r = deliver(c, json.dumps([{"id": "k9-a", "name": "x"}, {"id": "k9-b"}]).encode())
        assert r.status_code == 200
        own_redis.stop(signal.SIGKILL)  # no shutdown, no final save: only the fsynced AOF survives
    own_redis.start()
    q = PartyQueue(redis.Redis.from_url(own_redis.url))
    assert is_pending(q, "k9-a") and is_pending(q, "k9-b")
    [a, b] = sorted(q.claim(), key=lambda p: p.id)
    assert (a.id, a.last_kind, a.deliveries) == ("k9-a", "update", 1)
    assert q.ack(a) == "done" and q.ack(b) == "done"
    assert q.stats().pending == 0


def test_an_in_flight_claim_survives_kill_9_and_returns_after_its_lease(own_redis: OwnRedis) -> None:
    q = PartyQueue(redis.Redis.from_url(own_redis.url), lease_s=5)
    q.enqueue(["lease1"], "update", now=1000.0)
    [claimed] = q.claim(now=1000.0)
    own_redis.stop(signal.SIGKILL)  # Redis and, with it, the worker's connection die mid-batch
    own_redis.start()
    q = PartyQueue(redis.Redis.from_url(own_redis.url), lease_s=5)
    assert q.claim(now=1004.0) == []  # still leased
    [again] = q.claim(now=1006.0)
    assert again.id == "lease1" and again.attempts == 1
    assert q.ack(claimed, now=1007.0) == "stale"
