"""The wait of `beteiligte_sync` (include/airflow_provider/triggers/party_queue.py) against the real Redis: it ends with
success when work is queued (woken by the enqueue, not by a poll), when a backed-off id becomes due
and when a crashed worker's lease runs out, and with skipped after its idle timeout."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from include.airflow_provider.triggers.party_queue import PartyWorkTrigger
from tests.party_helpers import make_queue
from tests.redis_helpers import has_work


@pytest.fixture
def redis_conn(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    parts = urlsplit(redis_url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_REDIS_DEFAULT",
        json.dumps(
            {"conn_type": "redis", "host": parts.hostname, "port": parts.port, "extra": {"db": int(parts.path[1:])}}
        ),
    )
    return redis_url


def _first_event(trigger: PartyWorkTrigger, during: Any = None, timeout_s: float = 30.0) -> tuple[Any, float]:
    """Run the trigger until its first event (and `during()` alongside it); returns (event, seconds)."""

    async def main() -> tuple[Any, float]:
        started = time.monotonic()
        events = trigger.run()
        first = asyncio.ensure_future(events.__anext__())
        if during is not None:
            await asyncio.sleep(0.3)  # the trigger is subscribed and waiting by now
            await asyncio.to_thread(during)
        event = await asyncio.wait_for(first, timeout_s)
        await events.aclose()
        return event, time.monotonic() - started

    return asyncio.run(main())


def test_an_idle_queue_ends_skipped_after_the_idle_timeout(redis_conn: str) -> None:
    event, took = _first_event(PartyWorkTrigger(idle_timeout_s=1.0))
    assert type(event).__name__ == "TaskSkippedEvent" and took >= 1.0


def test_queued_work_ends_the_wait_at_once(redis_conn: str) -> None:
    queue = make_queue(redis_conn)
    queue.enqueue(["party-1"], "create")
    event, _ = _first_event(PartyWorkTrigger(idle_timeout_s=60))
    assert type(event).__name__ == "TaskSuccessEvent"


def test_an_enqueue_wakes_the_waiting_trigger(redis_conn: str) -> None:
    """Idle timeout 60 s, poll-free: only the enqueue's publication can end the wait within 30 s."""
    queue = make_queue(redis_conn)
    event, took = _first_event(PartyWorkTrigger(idle_timeout_s=60), during=lambda: queue.enqueue(["party-2"], "update"))
    assert type(event).__name__ == "TaskSuccessEvent" and took < 30


def test_a_backed_off_id_ends_the_wait_when_it_is_due(redis_conn: str) -> None:
    queue = make_queue(redis_conn, backoff_base_s=1.5, backoff_max_s=1.5)
    queue.enqueue(["party-3"], "create")
    (claimed,) = queue.claim(10)
    result = queue.nack(claimed, "Advoware 503")
    assert result.outcome == "retry" and not has_work(queue)
    event, took = _first_event(PartyWorkTrigger(idle_timeout_s=60))
    assert type(event).__name__ == "TaskSuccessEvent" and has_work(queue)
    assert took < 30


def test_an_expired_lease_ends_the_wait(redis_conn: str) -> None:
    queue = make_queue(redis_conn, lease_s=1.0)
    queue.enqueue(["party-4"], "create")
    queue.claim(10)  # a worker that dies now leaves its claim behind
    assert not has_work(queue)
    event, _ = _first_event(PartyWorkTrigger(idle_timeout_s=60))
    assert type(event).__name__ == "TaskSuccessEvent" and has_work(queue)
